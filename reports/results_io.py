"""Read the output contract (results/<dataset>/<profile>/<method>/...) and nothing else."""
import json
from pathlib import Path

import numpy as np

from protocol.metrics import per_user, target_ranks


def dataset_profile(root):
    """(dataset, profile label) of a results folder: results/<ds>/<profile>, or one seed's
    folder results/<ds>/<profile>/seed-<s> (label '<profile>, seed <s>')."""
    root = Path(root)
    if root.name.startswith("seed-") and root.name[5:].isdigit():
        return root.parent.parent.name, f"{root.parent.name}, seed {root.name[5:]}"
    return root.parent.name, root.name


def method_dirs(root):
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith((".", "_")) and (p / "metrics.json").is_file()
            and (p / "manifest.json").is_file()}


def external_dirs(root):
    """{name: folder} of the rows scored from outside predictions
    (results/<ds>/<profile>/external/<name>/, `python -m benchmark score`)."""
    base = Path(root) / "external"
    if not base.is_dir():
        return {}
    return {p.name: p for p in sorted(base.iterdir())
            if p.is_dir() and (p / "metrics.json").is_file() and (p / "manifest.json").is_file()
            and (p / "predictions.jsonl").is_file()}


def load_metrics(folder):
    with open(Path(folder) / "metrics.json") as f:
        return json.load(f)


def load_manifest(folder):
    with open(Path(folder) / "manifest.json") as f:
        return json.load(f)


def read_predictions(folder, fields=()):
    """predictions.jsonl as (users, targets, topk, {field: list}) for the optional per-user
    `fields` a method writes next to its top-k (LASAR: latent_steps); a field some row lacks
    is left out."""
    users, targets, topk = [], [], []
    extra = {f: [] for f in fields}
    with open(Path(folder) / "predictions.jsonl") as f:
        for line in f:
            r = json.loads(line)
            users.append(r["user"])
            targets.append(r["target"])
            topk.append(r["topk"])
            for k in extra:
                extra[k].append(r.get(k))
    return users, targets, topk, {k: v for k, v in extra.items() if None not in v}


def per_user_from(targets, topk, ks=(5, 10, 20)):
    width = max(len(t) for t in topk)
    grid = np.array([t + [None] * (width - len(t)) for t in topk], dtype=object)
    return per_user(target_ranks(grid, np.array(targets, dtype=object)), ks)


def load_per_user(folder, ks=(5, 10, 20)):
    """Per-user metric arrays recomputed from predictions.jsonl, keyed by user id order."""
    users, targets, topk, _ = read_predictions(folder)
    return users, per_user_from(targets, topk, ks)
