"""Checks of the output contract (../shared/DESIGN.md), shared by the end-to-end tests."""
import json
from pathlib import Path

import numpy as np
import pytest

from protocol.metrics import summarize, target_ranks

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


TABLES = ("table1", "table1_pvalues", "table3_rl_ablation", "table4_efficiency",
          "table5_scaling", "table8_segments", "force_n", "per_n", "n_distribution",
          "paper_comparison")
FIGURES = ("figure3", "figure4a", "figure4b", "figure5a", "figure5b")


def _row_cells(text, label):
    line = next(l for l in text.splitlines() if l.startswith(f"| {label} |"))
    return [c.strip().strip("*").replace("<u>", "").replace("</u>", "").rstrip("*†")
            for c in line.strip().strip("|").split("|")[1:]]


def check_reports(root):
    """Every table (LaTeX and Markdown), figure (PNG and PDF), the claims and report.md exist
    and are non-empty, and the numbers in them equal what the run's files hold."""
    root = Path(root)
    ds = root.parent.name
    stems = TABLES + (("table2_alignment",) if ds == "beauty" else ("table9_alignment",))
    for t in stems:
        for ext in ("md", "tex"):
            p = root / "tables" / f"{t}.{ext}"
            assert p.is_file() and p.stat().st_size > 0, p
    for f in FIGURES:
        png, pdf = root / "figures" / f"{f}.png", root / "figures" / f"{f}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert pdf.read_bytes()[:4] == b"%PDF", pdf
    claims = json.loads((root / "tables" / "claims.json").read_text())
    from reports.verdicts import VERDICTS
    assert len(claims) == 7 and all(c["verdict"] in VERDICTS for c in claims), claims
    report = (root / "report.md").read_text()
    for f in FIGURES:
        assert f"(figures/{f}.png)" in report
    assert "Not produced by this run" not in report, report[report.find("Not produced"):]
    # Table 1: every method's row equals its metrics.json
    shown = {}
    for man_path in root.glob("*/manifest.json"):
        man = json.loads(man_path.read_text())
        shown[man["display_name"]] = json.loads((man_path.parent / "metrics.json").read_text())
    check_table_numbers(root / "tables" / "table1.md", shown)
    # Table 5: both backbones' rows equal their metrics.json
    t5 = (root / "tables" / "table5_scaling.md").read_text()
    for m, label in (("lasar", "LASAR"), ("minionerec", "MiniOneRec"),
                     ("cot_gream", "Explicit CoT (GREAM)")):
        small = json.loads((root / m / "metrics.json").read_text())
        large = json.loads((root / "_scaling" / "large" / m / "metrics.json").read_text())
        want = [f"{d[k]:.4f}" for d in (small, large) for k in ("NDCG@10", "HR@10")]
        assert _row_cells(t5, label) == want, (label, _row_cells(t5, label), want)
    # Table 4: times and accuracies equal bench/cot.json
    b = json.loads((root / "bench" / "cot.json").read_text())
    t4 = (root / "tables" / "table4_efficiency.md").read_text()
    for key, label in (("plain", "MiniOneRec"), ("lasar", "LASAR"),
                       ("cot_generation", "Explicit CoT (CoT Gen.)")):
        cells = _row_cells(t4, label)
        assert cells[0] == f"{b['ms_per_user'][key]:.2f}"
        assert cells[-2:] == [f"{b['metrics'][key][k]:.4f}" for k in ("NDCG@10", "HR@10")]
    # Tables 3 and 9 / 2: rows equal studies.json
    st = json.loads((root / "lasar" / "studies.json").read_text())
    align = "table2_alignment" if ds == "beauty" else "table9_alignment"
    for stem, row, label in ((align, "sft_align_kl", "+ KL alignment"),
                             ("table3_rl_ablation", "rl_full", "+ REINFORCE (LASAR)")):
        r = st["rows"][row]
        cells = _row_cells((root / "tables" / f"{stem}.md").read_text(), label)
        assert cells[:4] == [f"{r[k]:.4f}" for k in ("NDCG@5", "NDCG@10", "HR@5", "HR@10")]
    # every study row keeps its per-user ranks (the claims' paired bootstrap), which give its
    # metrics; the lambda sweep names a row per value, the configured one LASAR's own
    from protocol.metrics import summarize
    for name, r in st["rows"].items():
        assert len(r["ranks"]) == st["eval_users"] == len(st["eval_user_ids"]), name
        assert summarize(np.array(r["ranks"]), (5, 10, 20))["HR@10"] == pytest.approx(r["HR@10"])
    assert "adaptive_argmax" in st["rows"] and st["n_mode"] == "sample"
    for entry in st["lambda_sweep"]:
        assert entry["row"] in st["rows"], entry
    # the paper comparison's reproduced Table 1 values are metrics.json's
    import csv
    with open(root / "tables" / "paper_comparison.csv") as f:
        for r in csv.DictReader(f):
            if r["table"] == "table1" and r["ours"]:
                m = json.loads((root / r["row"] / "metrics.json").read_text())
                assert float(r["ours"]) == pytest.approx(m[r["field"]])
