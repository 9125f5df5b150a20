"""Read the output contract (results/<dataset>/<profile>/<method>/...) and nothing else."""
import json
from pathlib import Path

import numpy as np

from benchmark.protocol.metrics import per_user, target_ranks


def method_dirs(root):
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith((".", "_")) and (p / "metrics.json").is_file()
            and (p / "manifest.json").is_file()}


def load_metrics(folder):
    with open(Path(folder) / "metrics.json") as f:
        return json.load(f)


def load_manifest(folder):
    with open(Path(folder) / "manifest.json") as f:
        return json.load(f)


def load_per_user(folder, ks=(5, 10, 20)):
    """Per-user metric arrays recomputed from predictions.jsonl, keyed by user id order."""
    users, targets, topk = [], [], []
    with open(Path(folder) / "predictions.jsonl") as f:
        for line in f:
            r = json.loads(line)
            users.append(r["user"])
            targets.append(r["target"])
            topk.append(r["topk"])
    width = max(len(t) for t in topk)
    grid = np.array([t + [None] * (width - len(t)) for t in topk], dtype=object)
    ranks = target_ranks(grid, np.array(targets, dtype=object))
    return users, per_user(ranks, ks)
