"""Predictions made outside this code base, checked against the leave-one-out split before
anything is computed (`python -m benchmark score`).

The file is the output contract's predictions.jsonl: one JSON object a line per test user,
{"user": id, "target": id, "topk": [id, ...]} with the top-k best first. Every problem is one
line naming the file and the line; all of them are reported together (up to MAX_PROBLEMS),
and nothing is scored while any remain.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BenchmarkError
from .io import file_sha256

MAX_PROBLEMS = 20


@dataclass
class ExternalPredictions:
    """items (n, k) item indices in the test split's order (-1 past a short list); sha256 of
    the file; short: how many lists had fewer than k items."""
    items: np.ndarray
    sha256: str
    short: int


def _as_id(x):
    if isinstance(x, str):
        return x
    return str(x) if isinstance(x, int) and not isinstance(x, bool) else None


def read_external(path, dataset, test, k, allow_short=False, sample_note=""):
    """Validate the predictions file `path` against the test examples `test` (the results
    folder's user sample) of `dataset`; `k` the list length (the protocol's top-k).
    `sample_note` is said when a user of the dataset is not in the sample.
    -> ExternalPredictions; raises BenchmarkError with one line per problem."""
    path = Path(path)
    if not path.is_file():
        raise BenchmarkError(f"{path}: no such file")
    user_row = {dataset.user_ids[u]: i for i, u in enumerate(test.users)}
    all_users = set(dataset.user_ids)
    item_index = {iid: j for j, iid in enumerate(dataset.item_ids)}
    items = np.full((len(test), k), -1, dtype=np.int64)
    seen, problems, short = {}, [], 0

    def bad(line, what):
        problems.append(f"{path}:{line}: {what}")

    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for no, text in enumerate(f, 1):
            if len(problems) >= MAX_PROBLEMS:
                break
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                bad(no, f"not valid JSON ({e.msg} at column {e.colno})")
                continue
            if not isinstance(rec, dict) or not {"user", "target", "topk"} <= set(rec):
                bad(no, 'needs an object with "user", "target" and "topk"')
                continue
            user = _as_id(rec["user"])
            if user is None or user not in user_row:
                bad(no, f"user {rec['user']!r} is not a user of '{dataset.name}'"
                    if user not in all_users else
                    f"user {user} is not one of this results folder's test users{sample_note}")
                continue
            if user in seen:
                bad(no, f"user {user} repeated (first on line {seen[user]})")
                continue
            seen[user] = no
            row = user_row[user]
            want = dataset.item_ids[test.targets[row]]
            if _as_id(rec["target"]) != want:
                bad(no, f"target {rec['target']!r} is not user {user}'s last item ({want})")
            topk = rec["topk"]
            if not isinstance(topk, list):
                bad(no, '"topk" must be a list of item ids')
                continue
            ids = [_as_id(x) for x in topk]
            unknown = [repr(x) for x, i in zip(topk, ids) if i not in item_index]
            if unknown:
                bad(no, f"unknown item id(s) {', '.join(unknown[:5])}"
                    + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
                continue
            if len(set(ids)) != len(ids):
                bad(no, "the list repeats an item; it must hold distinct catalog items")
                continue
            if len(ids) > k:
                bad(no, f"{len(ids)} items; the protocol ranks the top {k}")
                continue
            if len(ids) < k:
                if not allow_short:
                    bad(no, f"{len(ids)} items, not {k}; --allow-short scores shorter lists "
                            "(a target past the list then counts as a miss)")
                    continue
                short += 1
            items[row, :len(ids)] = [item_index[i] for i in ids]
    missing = [u for u in user_row if u not in seen]
    if missing and len(problems) < MAX_PROBLEMS:
        problems.append(f"{path}: {len(missing)} of {len(user_row)} test users missing (e.g. "
                        f"{', '.join(missing[:3])}){sample_note}")
    if problems:
        more = (" (the first ones; fix them and run again)" if len(problems) >= MAX_PROBLEMS
                else "")
        raise BenchmarkError(f"{len(problems)} problem(s) in {path}{more}; nothing was "
                             "scored:\n  " + "\n  ".join(problems))
    return ExternalPredictions(items, file_sha256(path), short)
