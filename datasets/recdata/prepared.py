"""Reader and validator for the prepared format of ../shared/datasets (see its README).

sequences.txt: `USER ITEM ITEM ...` per line, oldest first. items.jsonl: one object per item,
keyed by `item_id`. Optional published_sids.json: {item_id: [4 SID tokens]}.
Every problem is reported as one line `file:line: what to fix` before anything is trained.
"""
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from protocol.errors import BenchmarkError, InputError, did_you_mean
from protocol.io import read_text, text_lines

KNOWN_DATASETS = ("sports", "beauty", "instruments")
MIN_INTERACTIONS = 3  # test target + validation target + at least one history item
ENV_VAR = "LASAR_DATA_DIR"
SID_TOKEN = re.compile(r"^<([abcd])_(\d+)>$")
REPO_ROOT = Path(__file__).resolve().parents[2]

HOW_TO_GET = ("copy a prepared dataset folder (sequences.txt, items.jsonl) there, e.g. from "
              "../shared/datasets, or build one from raw Amazon files with "
              "`python -m benchmark data convert`")


@dataclass
class Dataset:
    """A loaded, validated dataset. Items are indexed 0..I-1 in items.jsonl order."""
    name: str
    root: Path
    user_ids: list            # str, file order
    sequences: list           # list of int arrays (item indices), chronological
    item_ids: list            # str, index -> dataset's own item id
    items: list               # dict records, same order as item_ids
    published_sids: dict = None   # item_id -> [4 tokens], or None
    fingerprint: str = ""     # hash of the files, for cache keys and manifests
    item_index: dict = field(default_factory=dict)

    @property
    def n_users(self):
        return len(self.user_ids)

    @property
    def n_items(self):
        return len(self.item_ids)

    @property
    def n_interactions(self):
        return int(sum(len(s) for s in self.sequences))


def resolve_data_dir(data_dir=None):
    """--data-dir, else $LASAR_DATA_DIR, else datasets/data/ in the repository."""
    if data_dir:
        return Path(data_dir).expanduser().resolve(), "--data-dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser().resolve(), f"${ENV_VAR}"
    return REPO_ROOT / "datasets" / "data", "default datasets/data/"


def dataset_dir(name, data_dir=None):
    root, source = resolve_data_dir(data_dir)
    path = root / name
    if path.is_dir():
        return path
    if name not in KNOWN_DATASETS:
        raise BenchmarkError(
            f"unknown dataset '{name}'{did_you_mean(name, KNOWN_DATASETS)}: no folder {path} "
            f"(data dir from {source}); known datasets: {', '.join(KNOWN_DATASETS)}")
    raise BenchmarkError(
        f"dataset '{name}' not found: looked in {path} (data dir from {source}); "
        f"pass --data-dir DIR or set ${ENV_VAR}, or {HOW_TO_GET}")


def _file_hash(paths):
    import hashlib
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def read_items(path):
    if not path.is_file():
        raise InputError(path, f"missing; every dataset needs items.jsonl ({HOW_TO_GET})")
    item_ids, items, seen = [], [], {}
    for lineno, line in text_lines(path):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(path, f"malformed JSON ({e.msg}); each line must be one "
                                   "JSON object with an item_id", lineno) from None
        if not isinstance(rec, dict) or not isinstance(rec.get("item_id"), (str, int)):
            raise InputError(path, "line is not a JSON object with a string item_id", lineno)
        iid = str(rec["item_id"])
        if iid in seen:
            raise InputError(path, f"duplicate item_id '{iid}' (first on line {seen[iid]}); "
                                   "item ids must be unique", lineno)
        seen[iid] = lineno
        item_ids.append(iid)
        items.append(rec)
    if not item_ids:
        raise InputError(path, "empty; it needs one JSON object per item")
    return item_ids, items


def read_sequences(path, item_index):
    import numpy as np
    if not path.is_file():
        raise InputError(path, f"missing; every dataset needs sequences.txt ({HOW_TO_GET})")
    user_ids, seqs, seen = [], [], {}
    for lineno, line in text_lines(path):
        parts = line.split()
        if not parts:
            continue
        user, items = parts[0], parts[1:]
        if user in seen:
            raise InputError(path, f"user '{user}' appears twice (first on line "
                                   f"{seen[user]}); one line per user", lineno)
        if len(items) < MIN_INTERACTIONS:
            raise InputError(path, f"user '{user}' has {len(items)} interaction(s); "
                                   f"leave-one-out needs at least {MIN_INTERACTIONS} "
                                   "(drop the user or apply 5-core filtering)", lineno)
        try:
            idx = [item_index[i] for i in items]
        except KeyError as e:
            raise InputError(path, f"item '{e.args[0]}' of user '{user}' is not in "
                                   "items.jsonl; add it there or remove it", lineno) from None
        seen[user] = lineno
        user_ids.append(user)
        seqs.append(np.asarray(idx, dtype=np.int64))
    if not user_ids:
        raise InputError(path, "empty; it needs one line `USER ITEM ITEM ...` per user")
    return user_ids, seqs


def read_published_sids(path, item_ids):
    if not path.is_file():
        return None
    try:
        table = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise InputError(path, f"malformed JSON ({e.msg})", e.lineno) from None
    if not isinstance(table, dict):
        raise InputError(path, "must be one JSON object {item_id: [4 SID tokens]}")
    for iid, sid in table.items():
        ok = (isinstance(sid, list) and len(sid) == 4 and all(
            isinstance(t, str) and SID_TOKEN.match(t) and SID_TOKEN.match(t).group(1) == "abcd"[k]
            for k, t in enumerate(sid)))
        if not ok:
            raise InputError(path, f"item '{iid}' has SID {sid!r}; each entry must be 4 tokens "
                                   "<a_i>, <b_j>, <c_k>, <d_l>")
    missing = [i for i in item_ids if i not in table]
    if missing:
        raise InputError(path, f"{len(missing)} item(s) of items.jsonl have no SID "
                               f"(first: '{missing[0]}'); give every item 4 tokens")
    return {str(k): v for k, v in table.items()}


def load_dataset(name, data_dir=None):
    """Load and validate dataset `name` from the data dir; raises BenchmarkError on bad input."""
    root = dataset_dir(name, data_dir)
    items_path, seq_path = root / "items.jsonl", root / "sequences.txt"
    item_ids, items = read_items(items_path)
    item_index = {iid: k for k, iid in enumerate(item_ids)}
    user_ids, seqs = read_sequences(seq_path, item_index)
    sids_path = root / "published_sids.json"
    published = read_published_sids(sids_path, item_ids)
    files = [items_path, seq_path] + ([sids_path] if sids_path.is_file() else [])
    return Dataset(name=name, root=root, user_ids=user_ids, sequences=seqs, item_ids=item_ids,
                   items=items, published_sids=published, fingerprint=_file_hash(files),
                   item_index=item_index)
