"""Table 1 from hand-built results: marks, p-values, missing rows, numbers from metrics.json."""
import json

import numpy as np

from benchmark.protocol.io import jsonl_text
from benchmark.protocol.metrics import summarize, target_ranks
from benchmark.protocol.settings import EvalConfig
from reports.table1 import write_table1

from .contract import check_table_numbers

EVAL = EvalConfig(ks=[5, 10, 20], bootstrap_resamples=500, bootstrap_seed=1)


def _write(root, method, display, ranks):
    """A method folder whose predictions put each user's target at the given rank."""
    d = root / method
    d.mkdir(parents=True)
    rows = []
    for u, r in enumerate(ranks):
        topk = [f"x{j}" for j in range(50)]
        if r:
            topk[r - 1] = f"t{u}"
        rows.append({"user": str(u), "target": f"t{u}", "topk": topk})
    (d / "predictions.jsonl").write_text(jsonl_text(rows))
    m = summarize(target_ranks(np.array([r["topk"] for r in rows], dtype=object),
                               np.array([r["target"] for r in rows], dtype=object)))
    (d / "metrics.json").write_text(json.dumps(m))
    (d / "manifest.json").write_text(json.dumps({"seed": 42, "display_name": display}))
    return m


def test_best_bold_second_underlined_and_pvalues(tmp_path):
    root = tmp_path / "sports" / "cpu"
    n = 400
    rng = np.random.default_rng(0)
    good = rng.integers(1, 4, n)                        # LASAR: ranks 1-3
    mid = rng.integers(2, 26, n)                        # SASRec: ranks 2-25
    bad = np.where(rng.random(n) < 0.5, 0, 30)          # GRU4Rec: mostly missing
    ms = {"LASAR": _write(root, "lasar", "LASAR", good),
          "SASRec": _write(root, "sasrec", "SASRec", mid),
          "GRU4Rec": _write(root, "gru4rec", "GRU4Rec", bad)}
    paths = write_table1(root, EVAL)
    assert {p.name for p in paths} == {"table1.tex", "table1.md", "table1_pvalues.tex",
                                       "table1_pvalues.md"}
    md = (root / "tables" / "table1.md").read_text()
    rows = {l.split("|")[1].strip(): l for l in md.splitlines() if l.startswith("| ")}
    assert list(rows)[1:] == ["LASAR", "GRU4Rec", "SASRec"]              # paper order
    assert f"**{ms['LASAR']['NDCG@5']:.4f}*" in rows["LASAR"]            # best, significant
    assert f"<u>{ms['SASRec']['NDCG@5']:.4f}</u>" in rows["SASRec"]     # second
    assert "**" not in rows["GRU4Rec"] and "<u>" not in rows["GRU4Rec"]
    check_table_numbers(root / "tables" / "table1.md", ms)
    assert "Not run (missing): Explicit CoT (GREAM), MiniOneRec, ReaRec, LC-Rec" in md
    assert "* LASAR better than every baseline at p < 0.05" in md
    pv = (root / "tables" / "table1_pvalues.md").read_text()
    assert "| SASRec | 0.0000 |" in pv
    tex = (root / "tables" / "table1.tex").read_text()
    assert r"\textbf{" in tex and r"\underline{" in tex and r"\midrule" in tex


def test_no_lasar_no_pvalues(tmp_path):
    root = tmp_path / "sports" / "cpu"
    _write(root, "sasrec", "SASRec", [1, 2, 0])
    paths = write_table1(root, EVAL)
    assert {p.name for p in paths} == {"table1.tex", "table1.md"}


def test_lasar_worse_gets_no_marks_and_says_so(tmp_path):
    root = tmp_path / "sports" / "cpu"
    rng = np.random.default_rng(1)
    _write(root, "lasar", "LASAR", rng.integers(10, 40, 300))
    _write(root, "sasrec", "SASRec", rng.integers(1, 5, 300))
    write_table1(root, EVAL)
    md = (root / "tables" / "table1.md").read_text()
    lasar = next(l for l in md.splitlines() if l.startswith("| LASAR"))
    assert "*" not in lasar.replace("**", "")
    assert "LASAR is better than every baseline at p < 0.05 on no metric" in md
