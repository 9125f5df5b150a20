"""Checks of the output contract (DESIGN.md), shared by the end-to-end tests."""
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.metrics import summarize, target_ranks

MANIFEST_KEYS = {"config", "config_hash", "seed", "git_commit", "packages", "hardware",
                 "timings", "dataset", "profile", "method", "metrics"}


def read_sequences(path):
    out = {}
    for line in Path(path).read_text().splitlines():
        u, *items = line.split()
        out[u] = items
    return out


def check_method_folder(folder, data_dir, n_users, k=50):
    folder = Path(folder)
    seqs = read_sequences(Path(data_dir) / "sequences.txt")
    catalog = {json.loads(l)["item_id"] for l in (Path(data_dir) / "items.jsonl").open()}
    rows = [json.loads(l) for l in (folder / "predictions.jsonl").open()]
    assert len(rows) == n_users
    assert len({r["user"] for r in rows}) == n_users
    for r in rows:
        assert r["target"] == seqs[r["user"]][-1]                # the user's last item
        assert len(r["topk"]) == k and len(set(r["topk"])) == k  # k distinct items
        assert set(r["topk"]) <= catalog                        # real items
    metrics = json.loads((folder / "metrics.json").read_text())
    ranks = target_ranks(np.array([r["topk"] for r in rows], dtype=object),
                         np.array([r["target"] for r in rows], dtype=object))
    again = summarize(ranks)
    assert metrics["n_users"] == n_users
    for name, v in again.items():
        assert metrics[name] == pytest.approx(v)
    man = json.loads((folder / "manifest.json").read_text())
    assert MANIFEST_KEYS <= set(man)
    assert man["metrics"] == metrics
    return rows, metrics, man


def check_table_numbers(table_md, metrics_by_display):
    """Every number in Table 1's Markdown equals what metrics.json holds (4 decimals)."""
    text = Path(table_md).read_text()
    for display, metrics in metrics_by_display.items():
        line = next(l for l in text.splitlines() if l.startswith(f"| {display} |"))
        cells = [c.strip().strip("*").replace("<u>", "").replace("</u>", "").rstrip("*")
                 for c in line.strip("|").split("|")[1:]]
        want = [f"{metrics[m]:.4f}" for m in ("NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10",
                                              "HR@20")]
        assert cells == want, (display, cells, want)
