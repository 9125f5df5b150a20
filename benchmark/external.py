"""Doors for methods trained elsewhere (`python -m benchmark users`, `python -m benchmark score`).

users: the examples of a split exactly as every method here sees them (the profile's user
       sample, the history window), with the history as SIDs where the dataset's SID table is
       already built, and the target (which the predictions file repeats; a model must not
       read it); an outside model is then evaluated on precisely our test users.
score: an outside method's predictions file, checked against the split (protocol/external.py;
       nothing is written when it fails), scored with the protocol's metrics and written as
       results/<ds>/<profile>/external/<NAME>/{predictions.jsonl, metrics.json,
       manifest.json}; then the folder's tables and report are rewritten, as --only-reports
       does. Table 1 shows the row after the paper's methods, marked external, with paired
       bootstrap p-values against LASAR and the best baseline (reports/table1.py).
"""
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recdata import load_dataset, make_split
from recdata.split import sample_users

from protocol import manifest as mf
from protocol.artifact import Artifact
from protocol.errors import BenchmarkError
from protocol.external import read_external
from protocol.io import atomic_write_json, jsonl_text, staged_dir
from protocol.metrics import summarize, target_ranks
from protocol.sids import sid_inputs

log = logging.getLogger(__name__)
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
EXTERNAL = "external"              # reports/results.py reads the same folder


@dataclass
class Folder:
    """A results folder's data: settings, dataset, split (the profile's user sample) and its
    path results/<ds>/<profile>."""
    cfg: object
    dataset: object
    split: object
    root: Path


def folder_of(cfg, dataset_name, data_dir, out):
    from .plan import profile_folder, results_root
    s = cfg.settings
    ds = load_dataset(dataset_name, data_dir)
    users = sample_users(ds.n_users, s.max_users, s.users_seed)
    return Folder(cfg, ds, make_split(ds, s.history_len, users),
                  results_root(out) / dataset_name / profile_folder(cfg))


def sample_note(f, dataset_name):
    s = f.cfg.settings
    if not s.max_users or s.max_users >= f.dataset.n_users:
        return ""
    return (f" (profile {f.cfg.profile} scores a fixed-seed sample of {s.max_users:,} of "
            f"{f.dataset.n_users:,} users; `python -m benchmark users {dataset_name} --profile "
            f"{f.cfg.profile} --split test --out users.jsonl` lists them)")


def export_users(f, split_name, out_path):
    """Write the split's examples as JSONL. -> (rows, whether SIDs were included)."""
    ex = getattr(f.split, split_name)
    art = Artifact(f.root.parent / "_cache", "sids", sid_inputs(f.dataset, f.cfg.settings.sids))
    table = None
    if art.done:
        from protocol.sids import build_or_load
        table = build_or_load(f.dataset, f.cfg.settings.sids, f.root.parent / "_cache")
    ids = np.asarray(f.dataset.item_ids, dtype=object)
    rows = []
    for u, t, h in zip(ex.users, ex.targets, ex.histories()):
        r = {"user": f.dataset.user_ids[u], "history": ids[h].tolist()}
        if table is not None:
            r["history_sids"] = ["".join(table.tokens(i)) for i in h]
        r["target"] = ids[t]      # the predictions file repeats it (a model must not read it)
        rows.append(r)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tmp.write_text(jsonl_text(rows))
    tmp.replace(out_path)
    return len(rows), table is not None


def existing_users(root):
    """The test users of the folder's first method with predictions (None: none yet)."""
    from reports.results import method_folders, read_predictions
    found = method_folders(root)
    if not found:
        return None, None
    name = sorted(found)[0]
    return name, read_predictions(found[name]).users


def score(f, dataset_name, path, name, allow_short=False):
    """Validate, score and write the external row. -> (folder, metrics)."""
    if not NAME.match(name):
        raise BenchmarkError(f"--name {name!r}: use letters, digits, '.', '_', '+' or '-' "
                             "(at most 64, starting with a letter or digit)")
    test = f.split.test
    method, users = existing_users(f.root)
    ours = [f.dataset.user_ids[u] for u in test.users]
    if users is not None and users != ours:
        raise BenchmarkError(f"{f.root}: its methods ({method}) were scored on other test users "
                             "than this profile's sample; pass the --profile and --set the "
                             "run used")
    k = min(f.cfg.settings.topk, f.dataset.n_items)     # as RunContext.topk
    pred = read_external(path, f.dataset, test, k, allow_short, sample_note(f, dataset_name))
    metrics = summarize(target_ranks(pred.items, test.targets), f.cfg.settings.eval.ks)
    ids = np.asarray(f.dataset.item_ids, dtype=object)
    rows = ({"user": u, "target": ids[t], "topk": ids[r[r >= 0]].tolist()}
            for u, t, r in zip(ours, test.targets, pred.items))
    manifest = mf.build(
        method=name, display_name=name, kind=EXTERNAL, profile=f.cfg.profile,
        dataset={"name": f.dataset.name, "root": str(f.dataset.root),
                 "fingerprint": f.dataset.fingerprint, "users": f.dataset.n_users,
                 "items": f.dataset.n_items, "test_users": len(test)},
        predictions_file={"path": str(Path(path).resolve()), "sha256": pred.sha256,
                          "allow_short": allow_short, "short_lists": pred.short},
        seed=f.cfg.settings.seed, metrics=metrics)
    manifest["command"] = ["python", "-m", "benchmark"] + sys.argv[1:]
    folder = f.root / EXTERNAL / name
    with staged_dir(folder) as stage:
        (stage / "predictions.jsonl").write_text(jsonl_text(rows))
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "manifest.json", manifest)
    return folder, metrics
