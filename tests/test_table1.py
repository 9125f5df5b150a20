"""Table 1 from hand-built results: marks, p-values, missing rows, numbers from metrics.json."""
import json

import numpy as np

from protocol.io import jsonl_text
from protocol.metrics import METRIC_ORDER, summarize, target_ranks
from protocol.settings import EvalConfig
from reports.results import load_results
from reports.table1 import write_table1, write_table1_pvalues

from .contract import check_table_numbers

EVAL = EvalConfig(ks=[5, 10, 20], bootstrap_resamples=500, bootstrap_seed=1, rerun_spread={})


def _table1(root):
    """Table 1 and its p-value table, as a run writes them."""
    res = load_results(root, EVAL)
    return write_table1(res) + write_table1_pvalues(res)


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
    paths = _table1(root)
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
    assert "* LASAR better than each of the paper's baselines here at p < 0.05" in md
    pv = (root / "tables" / "table1_pvalues.md").read_text()
    assert "| SASRec | 0.0000 |" in pv
    tex = (root / "tables" / "table1.tex").read_text()
    assert r"\textbf{" in tex and r"\underline{" in tex and r"\midrule" in tex


def test_no_lasar_no_pvalues(tmp_path):
    root = tmp_path / "sports" / "cpu"
    _write(root, "sasrec", "SASRec", [1, 2, 0])
    paths = _table1(root)
    assert {p.name for p in paths} == {"table1.tex", "table1.md"}


def test_lasar_worse_gets_no_marks_and_says_so(tmp_path):
    root = tmp_path / "sports" / "cpu"
    rng = np.random.default_rng(1)
    _write(root, "lasar", "LASAR", rng.integers(10, 40, 300))
    _write(root, "sasrec", "SASRec", rng.integers(1, 5, 300))
    _table1(root)
    md = (root / "tables" / "table1.md").read_text()
    lasar = next(l for l in md.splitlines() if l.startswith("| LASAR"))
    assert "*" not in lasar.replace("**", "")
    assert "LASAR is better than each of the paper's baselines here at p < 0.05 on no metric" in md


def _cells(root, display):
    """The six metric cells of a row of tables/table1.md, as written (marks included)."""
    md = (root / "tables" / "table1.md").read_text()
    line = next(l for l in md.splitlines() if l.startswith(f"| {display} |"))
    return [c.strip() for c in line.strip().strip("|").split("|")[1:]]


def test_exact_ties_share_the_mark_and_nobody_is_starred(tmp_path):
    """LASAR and SASRec rank every user alike: both bold, the next value (GRU4Rec's) underlined,
    and no star: LASAR is significantly better than GRU4Rec but not than SASRec (p = 1)."""
    root = tmp_path / "sports" / "cpu"
    rng = np.random.default_rng(2)
    same = rng.integers(1, 8, 300)
    ms = {"LASAR": _write(root, "lasar", "LASAR", same),
          "SASRec": _write(root, "sasrec", "SASRec", same),
          "GRU4Rec": _write(root, "gru4rec", "GRU4Rec", rng.integers(5, 40, 300))}
    _table1(root)
    for name in ("LASAR", "SASRec"):
        assert _cells(root, name) == [f"**{ms[name][k]:.4f}**" for k in METRIC_ORDER]
    assert _cells(root, "GRU4Rec") == [f"<u>{ms['GRU4Rec'][k]:.4f}</u>" for k in METRIC_ORDER]
    pv = (root / "tables" / "table1_pvalues.md").read_text()
    assert "| SASRec | 1.0000 | 1.0000 |" in pv and "| GRU4Rec | 0.0000 |" in pv
    assert "on no metric" in (root / "tables" / "table1.md").read_text()


def _write_metrics(root, method, display, value):
    """A method folder whose metrics.json holds `value` for every metric (no predictions:
    without LASAR, Table 1 reads none)."""
    d = root / method
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(json.dumps({**{k: value for k in METRIC_ORDER},
                                                "n_users": 100}))
    (d / "manifest.json").write_text(json.dumps({"seed": 42, "display_name": display}))


def test_values_equal_at_four_decimals_share_the_mark(tmp_path):
    """Marks follow the numbers shown: 0.12344 and 0.12341 both show 0.1234 and are both best,
    0.12296 (0.1230) is second; 0.12346 shows 0.1235 and is best on its own."""
    root = tmp_path / "sports" / "cpu"
    for m, v in (("sasrec", 0.12344), ("gru4rec", 0.12341), ("rearec", 0.12296),
                 ("lcrec", 0.1101)):
        _write_metrics(root, m, m, v)
    _table1(root)
    assert _cells(root, "SASRec") == _cells(root, "GRU4Rec") == ["**0.1234**"] * 6
    assert _cells(root, "ReaRec") == ["<u>0.1230</u>"] * 6 and _cells(root, "LC-Rec") == [
        "0.1101"] * 6
    root = tmp_path / "beauty" / "cpu"
    for m, v in (("sasrec", 0.12346), ("gru4rec", 0.12341), ("rearec", 0.12344)):
        _write_metrics(root, m, m, v)
    _table1(root)
    assert _cells(root, "SASRec") == ["**0.1235**"] * 6
    assert _cells(root, "GRU4Rec") == _cells(root, "ReaRec") == ["<u>0.1234</u>"] * 6


def test_the_star_is_per_metric_and_needs_every_baseline(tmp_path):
    """LASAR ranks each target as SASRec does within the top 10 and also finds, at rank 15,
    half of the targets SASRec misses: tied (both bold, no star) at @5 and @10, significantly
    better than both baselines (bold and starred) at @20."""
    root = tmp_path / "sports" / "cpu"
    rng = np.random.default_rng(3)
    sasrec = np.where(rng.random(400) < 0.5, rng.integers(1, 11, 400), 0)
    lasar = np.where((sasrec == 0) & (rng.random(400) < 0.5), 15, sasrec)
    ms = {"LASAR": _write(root, "lasar", "LASAR", lasar),
          "SASRec": _write(root, "sasrec", "SASRec", sasrec),
          "GRU4Rec": _write(root, "gru4rec", "GRU4Rec", rng.integers(8, 50, 400))}
    _table1(root)
    at20 = {"NDCG@20", "HR@20"}
    assert _cells(root, "LASAR") == [f"**{ms['LASAR'][k]:.4f}" + ("*" if k in at20 else "")
                                     + "**" for k in METRIC_ORDER]
    assert _cells(root, "SASRec") == [(f"<u>{ms['SASRec'][k]:.4f}</u>" if k in at20 else
                                       f"**{ms['SASRec'][k]:.4f}**") for k in METRIC_ORDER]
    md = (root / "tables" / "table1.md").read_text()
    assert "* LASAR better than each of the paper's baselines here at p < 0.05" in md
    check_table_numbers(root / "tables" / "table1.md", ms)


def test_zeros_and_columns_that_all_read_the_same_get_no_mark(tmp_path):
    """Three methods find no target (0.0000 everywhere) and SASRec finds a few: SASRec bold,
    the zeros unmarked (not all bold, not underlined). Two methods with identical values: a
    column where every value reads the same gets no mark at all. The rule is in the notes."""
    root = tmp_path / "sports" / "cpu"
    for m in ("lasar", "gru4rec", "rearec"):
        _write(root, m, m, [0] * 50)
    m = _write(root, "sasrec", "SASRec", [1, 3, 12] + [0] * 47)
    _table1(root)
    assert _cells(root, "SASRec") == [f"**{m[k]:.4f}**" for k in METRIC_ORDER]
    for name in ("LASAR", "GRU4Rec", "ReaRec"):
        assert _cells(root, name) == ["0.0000"] * 6
    assert "a value that reads 0.0000 gets none" in (root / "tables" / "table1.md").read_text()
    root = tmp_path / "beauty" / "cpu"
    for m in ("sasrec", "gru4rec"):
        _write_metrics(root, m, m, 0.0123)
    _table1(root)
    assert _cells(root, "SASRec") == _cells(root, "GRU4Rec") == ["0.0123"] * 6


def test_rows_beyond_the_papers_get_pvalues_but_do_not_decide_the_star(tmp_path):
    """An external row and LatentR3 as good as LASAR: their p-values are listed, LASAR keeps
    its star against the paper's baselines, and the external row comes last, marked."""
    root = tmp_path / "sports" / "cpu"
    rng = np.random.default_rng(0)
    good = rng.integers(1, 4, 400)
    _write(root, "lasar", "LASAR", good)
    _write(root, "sasrec", "SASRec", rng.integers(2, 26, 400))
    _write(root, "latentr3", "LatentR3", good)
    _write(root, "external/Mine", "Mine", good)
    _table1(root)
    md = (root / "tables" / "table1.md").read_text()
    rows = [l.split("|")[1].strip() for l in md.splitlines() if l.startswith("| ")][1:]
    assert rows == ["LASAR", "SASRec", "LatentR3", "Mine (external)"]
    assert _cells(root, "LASAR")[0].endswith("***")            # bold and starred
    pv = (root / "tables" / "table1_pvalues.md").read_text()
    assert "| LatentR3 |" in pv and "| Mine (external) |" in pv
