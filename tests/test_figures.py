"""Figures 3, 4a, 4b, 5a, 5b from a hand-built studies.json: files written, formats right,
plotted numbers equal the ones worked out by hand, absent data skipped without error."""
import json
import os

import matplotlib as mpl
import numpy as np
import pytest

from reports.figure_data import NAMES, figure_data, moving_average
from reports.figures import write_figure
from reports.lasar_tables import write_lambda

from .conftest import results_at

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _studies():
    return {
        "eval_users": 10,
        "rows": {
            "pure_sft": {"HR@10": 0.5, "NDCG@10": 0.3, "n_users": 10},
            "force_8": {"HR@10": 0.3, "n_users": 10,
                        "n_dist": {"counts": [0] * 7 + [10], "mean": 8.0}},
            "force_1": {"HR@10": 0.1, "n_users": 10,
                        "n_dist": {"counts": [10] + [0] * 7, "mean": 1.0}},
            "force_2": {"HR@10": 0.2, "n_users": 10},
            "rl_full": {"HR@10": 0.4, "n_users": 10,
                        "n_dist": {"counts": [2, 3, 5, 0, 0, 0, 0, 0], "mean": 2.3}},
            "adaptive_argmax": {"HR@10": 0.5, "n_users": 10,
                                "n_dist": {"counts": [0, 10, 0, 0, 0, 0, 0, 0], "mean": 2.0}},
            "rl_lambda_0.001": {"HR@10": 0.2, "NDCG@10": 0.1, "n_users": 10,
                                "n_dist": {"counts": [10] + [0] * 7, "mean": 1.0}},
        },
        "n_mode": "sample",
        "lambda_sweep": [{"step_penalty": 0.001, "row": "rl_lambda_0.001"},
                         {"step_penalty": 0.0005, "row": "rl_full"}],
        "n_dist_after_sft": {"counts": [0, 0, 6, 4, 0, 0, 0, 0], "mean": 3.4},
        "n_dist_final_subset": {"counts": [2, 3, 5, 0, 0, 0, 0, 0], "mean": 2.3},
        "n_dist_final_all_users": {"counts": [5, 10, 5, 0, 0, 0, 0, 0], "mean": 2.0},
        "per_n_all_users": {
            "1": {"HR@10": 0.2, "NDCG@10": 0.1, "n_users": 5},
            "2": {"HR@10": 0.3, "NDCG@10": 0.2, "n_users": 10},
            "3": {"HR@10": 0.0, "NDCG@10": 0.0, "n_users": 5},
            "4": {"HR@10": 0.0, "NDCG@10": 0.0, "n_users": 0},
        },
        "figure3": {"stage1": [[1000, 3.0], [2000, 2.5]], "stage2_start": 2000,
                    "stage2": [[2500, 2.2], [3000, 2.0]], "two_stage_row": "sft_align_kl",
                    "budget": {"steps": 30, "examples": 3000},
                    "mixed": [{"scale": 1, "lr": 1e-3, "row": "mixed_x1",
                               "curve": [[1000, 3.5], [2000, 3.2], [3000, 3.1]]},
                              {"scale": 10, "lr": 1e-2, "row": "mixed_x10",
                               "curve": [[1000, 3.9], [3000, 3.6]]}]},
        "rl_log": [{"step": s, "mean_n": 4.0 - 0.1 * s, "reward": 0.1 * s, "baseline": 0.0,
                    "hit": 0.5} for s in range(1, 17)],
    }


def _approx_points(points):
    """pytest.approx for a list of [x, y] points (approx takes flat sequences only)."""
    class Points:
        def __eq__(self, other):
            return (len(other) == len(points)
                    and all(list(o) == pytest.approx(list(p)) for o, p in zip(other, points)))

        def __repr__(self):
            return repr(points)
    return Points()


def write_figures(root):
    """Every figure of the folder, as a run writes them. -> the paths written."""
    res = results_at(root)
    return [p for n in NAMES for p in write_figure(res, n)]


def _root(tmp_path, studies):
    (tmp_path / "lasar").mkdir(parents=True, exist_ok=True)
    (tmp_path / "lasar" / "studies.json").write_text(json.dumps(studies))
    return tmp_path


def test_all_figures_written(tmp_path):
    root = _root(tmp_path, _studies())
    rc = dict(mpl.rcParams)
    paths = write_figures(root)
    expected = {root / "figures" / f"{n}.{ext}" for n in NAMES for ext in ("png", "pdf")}
    assert set(paths) == expected
    for p in expected:
        data = p.read_bytes()
        assert len(data) > 1000
        assert data.startswith(PNG_MAGIC if p.suffix == ".png" else b"%PDF")
    # atomic writes leave no temp files behind; the style does not leak into rcParams
    assert sorted(os.listdir(root / "figures")) == sorted(p.name for p in expected)
    assert dict(mpl.rcParams) == rc


def test_png_size_is_one_column(tmp_path):
    from PIL import Image
    root = _root(tmp_path, _studies())
    write_figures(root)
    w, h = Image.open(root / "figures" / "figure4a.png").size
    assert (w, h) == (round(3.4 * 200), round(2.4 * 200))


def test_figure_data_matches_studies(tmp_path):
    root = _root(tmp_path, _studies())
    d = figure_data(results_at(root))

    # 4a: Force N sorted numerically, then the adaptive rows (rl_full sampled N, argmax N)
    assert list(d["figure4a"]) == ["Force N=1", "Force N=2", "Force N=8", "Adaptive (sampled N)",
                                   "Adaptive (argmax N)"]
    assert d["figure4a"] == pytest.approx(
        {"Force N=1": 10.0, "Force N=2": 20.0, "Force N=8": 30.0, "Adaptive (sampled N)": 40.0,
         "Adaptive (argmax N)": 50.0})
    assert d["figure4a_n_users"] == 10 and d["figure4a_ci"] == {}      # no ranks: no bars

    # 4b: shares in %, means as given; RL side from all users, not the subset
    sft, rl = d["figure4b"]["after_sft"], d["figure4b"]["after_rl"]
    assert sft["share"] == pytest.approx([0, 0, 60, 40, 0, 0, 0, 0])
    assert sft["mean"] == 3.4
    assert rl["share"] == pytest.approx([25, 50, 25, 0, 0, 0, 0, 0])
    assert rl["mean"] == 2.0 and rl["n_users"] == 20

    # 5b: N with users only; HR@10 in %; overall = user-weighted mean
    f5b = d["figure5b"]
    assert f5b["HR@10"] == pytest.approx({1: 20.0, 2: 30.0, 3: 0.0})
    assert f5b["n_users"] == {1: 5, 2: 10, 3: 5}
    assert f5b["overall_HR@10"] == pytest.approx((20 * 5 + 30 * 10 + 0 * 5) / 20)

    # 3: one axis, examples since the backbone; Stage 2 after Stage 1's 2,000; each mixed run
    f3 = d["figure3"]
    assert f3["unit"] == "examples"
    assert f3["stage1"] == _approx_points([[1000, 3.0], [2000, 2.5]])
    assert f3["stage2_start"] == 2000
    assert f3["stage2"] == _approx_points([[2500, 2.2], [3000, 2.0]])
    assert [m["label"] for m in f3["mixed"]] == ["Mixed, lr 0.001", "Mixed, lr 0.01"]
    assert f3["mixed"][0]["curve"] == _approx_points([[1000, 3.5], [2000, 3.2], [3000, 3.1]])
    assert f3["budget"] == {"steps": 30, "examples": 3000}

    # 5a: raw values per step plus a trailing moving average
    f5a = d["figure5a"]
    assert f5a["mean_n"]["step"] == list(range(1, 17))
    assert f5a["mean_n"]["value"] == pytest.approx([4.0 - 0.1 * s for s in range(1, 17)])
    assert f5a["reward"]["value"] == pytest.approx([0.1 * s for s in range(1, 17)])
    w = f5a["reward"]["window"]
    assert w == 2
    assert f5a["reward"]["moving_average"][0] == pytest.approx(0.1)
    assert f5a["reward"]["moving_average"][5] == pytest.approx((0.5 + 0.6) / 2)


def test_moving_average():
    assert moving_average([1, 2, 3, 4], 2).tolist() == pytest.approx([1, 1.5, 2.5, 3.5])
    assert moving_average([1, 2, 3], 1).tolist() == [1, 2, 3]
    assert len(moving_average([], 4)) == 0


def test_missing_rl_log_skips_figure5a(tmp_path):
    s = _studies()
    del s["rl_log"]
    root = _root(tmp_path, s)
    paths = write_figures(root)
    names = {p.stem for p in paths}
    assert "figure5a" not in names
    assert names == set(NAMES) - {"figure5a"}
    assert not (root / "figures" / "figure5a.png").exists()
    assert "figure5a" not in figure_data(results_at(root))


def test_fallbacks_and_partial_data(tmp_path):
    s = _studies()
    del s["n_dist_final_all_users"]                   # falls back to the subset
    s["figure3"]["mixed"] = []                        # studies.mixed off: two-stage alone
    s["rows"]["adaptive"] = s["rows"].pop("rl_full")  # no RL ablation: row is "adaptive"
    del s["n_mode"], s["rows"]["adaptive_argmax"]     # an older studies.json
    del s["per_n_all_users"]
    root = _root(tmp_path, s)
    d = figure_data(results_at(root))
    assert d["figure4b"]["after_rl"]["share"] == pytest.approx([20, 30, 50, 0, 0, 0, 0, 0])
    assert d["figure4a"]["Adaptive"] == pytest.approx(40.0)
    assert d["figure_lambda"]["lambda"] == [0.001]    # the sweep's rl_full row is gone
    assert d["figure3"]["mixed"] == [] and len(d["figure3"]["stage2"]) == 2
    names = {p.stem for p in write_figures(root)}
    assert names == {"figure3", "figure4a", "figure4b", "figure5a", "figure_lambda"}


@pytest.mark.parametrize("studies", [None, {}, {"rows": {}, "figure3": {}, "rl_log": []},
                                     {"rows": "bad", "figure3": None, "per_n_all_users": [1],
                                      "n_dist_after_sft": {"counts": [0] * 8}}])
def test_nothing_to_draw(tmp_path, studies):
    if studies is not None:
        _root(tmp_path, studies)
    assert write_figures(tmp_path) == []
    assert figure_data(results_at(tmp_path)) == {}
    assert not (tmp_path / "figures").exists()


def _ranks(hits, n=10):
    return [2] * hits + [0] * (n - hits)


def test_error_bars_from_the_study_users_ranks(tmp_path):
    """Rows with ranks get 95% bootstrap bars: a row every user hits has [100, 100], one no
    user hits [0, 0], one with 4 hits of 10 a bar around its 40%; rows without ranks none."""
    s = _studies()
    s["eval_user_ids"] = [str(u) for u in range(10)]
    s["rows"]["force_1"]["ranks"] = _ranks(0)
    s["rows"]["force_8"]["ranks"] = _ranks(10)
    s["rows"]["rl_full"]["ranks"] = _ranks(4)
    s["rows"]["adaptive_argmax"]["ranks"] = _ranks(4)[:9]          # wrong length: ignored
    d = figure_data(results_at(_root(tmp_path, s)))
    ci = d["figure4a_ci"]
    assert set(ci) == {"Force N=1", "Force N=8", "Adaptive (sampled N)"}
    assert ci["Force N=1"] == [0.0, 0.0] and ci["Force N=8"] == [100.0, 100.0]
    lo, hi = ci["Adaptive (sampled N)"]
    assert 0 <= lo < 40.0 < hi <= 100 and hi - lo > 30       # 10 users: a wide interval
    assert len(write_figures(tmp_path)) == 2 * len(NAMES)


def _predictions(root, ns, hits):
    """LASAR's results folder: predictions.jsonl where user i has latent_steps ns[i] and hits
    iff hits[i] (and the metrics.json and manifest.json every method folder has)."""
    rows = [{"user": str(i), "target": f"t{i}", "latent_steps": int(n),
             "topk": [f"t{i}" if h else "x", "y"]} for i, (n, h) in enumerate(zip(ns, hits))]
    (root / "lasar" / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "lasar" / "metrics.json").write_text(json.dumps({"HR@10": float(np.mean(hits))}))
    (root / "lasar" / "manifest.json").write_text(json.dumps({"seed": 1}))


def test_figure5b_error_bars(tmp_path):
    """Without predictions: Wilson intervals from the hit counts (1 of 5: [3.62, 62.45]%, by
    the textbook); with predictions whose N counts match: bootstrap over each N's users."""
    from protocol.stats import bootstrap_interval
    root = _root(tmp_path, _studies())
    f5b = figure_data(results_at(root))["figure5b"]
    assert f5b["ci_kind"] == "wilson"
    assert f5b["ci"][1] == pytest.approx([3.62, 62.45], abs=0.01)
    assert f5b["ci"][3][0] == 0.0
    ns = [1] * 5 + [2] * 10 + [3] * 5
    hits = [1, 0, 0, 0, 0] + [1, 1, 1] + [0] * 7 + [0] * 5       # 1/5, 3/10, 0/5 as studies
    _predictions(root, ns, hits)
    f5b = figure_data(results_at(root))["figure5b"]
    assert f5b["ci_kind"] == "bootstrap"
    assert f5b["ci"][3] == [0.0, 0.0]
    want = bootstrap_interval({"hr": np.array(hits[5:15], float)}, 2000, 2026)["hr"]
    assert f5b["ci"][2] == pytest.approx([100 * want[0], 100 * want[1]])
    _predictions(root, [1] * 6 + [2] * 9 + [3] * 5, hits)         # counts differ: Wilson
    assert figure_data(results_at(root))["figure5b"]["ci_kind"] == "wilson"


def test_lambda_sweep_figure_and_table(tmp_path):
    s = _studies()
    s.update(eval_users=10, all_test_users=20, eval_user_ids=[str(u) for u in range(10)])
    s["rows"]["rl_lambda_0.001"]["ranks"] = _ranks(2)
    s["rows"]["rl_lambda_0.0001"] = {"HR@10": 0.6, "NDCG@10": 0.3, "n_users": 10,
                                     "n_dist": {"counts": [0, 0, 5, 5, 0, 0, 0, 0], "mean": 3.5}}
    s["lambda_sweep"].append({"step_penalty": 0.0001, "row": "rl_lambda_0.0001"})
    s["lambda_sweep"].append({"step_penalty": 0.01, "row": "rl_lambda_missing"})
    root = _root(tmp_path, s)
    d = figure_data(results_at(root))["figure_lambda"]
    assert d["lambda"] == [0.0001, 0.0005, 0.001]                  # sorted; missing row left out
    assert d["configured"] == [False, True, False]
    assert d["mean_n"] == [3.5, 2.3, 1.0] and d["HR@10"] == pytest.approx([60.0, 40.0, 20.0])
    assert d["HR@10_ci"][:2] == [None, None] and d["HR@10_ci"][2][0] < 20.0 < d["HR@10_ci"][2][1]
    assert tuple(d["mean_n_ci"][2]) == (1.0, 1.0)                 # every user N = 1
    lo, hi = d["mean_n_ci"][0]
    assert 3.0 <= lo < 3.5 < hi <= 4.0
    write_lambda(results_at(root))
    md = (root / "tables" / "table_lambda.md").read_text()
    assert "| 0.0005 (configured) | rl_full | 2.30 [" in md
    assert "| 0.0001 | rl_lambda_0.0001 | 3.50 [" in md and "| 0.6000 |" in md
    assert (root / "tables" / "table_lambda.tex").is_file()
