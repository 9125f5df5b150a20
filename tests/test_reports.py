"""Reports from a hand-made results folder: the paper comparison, Table 4's totals and Table 5's
backbone labels, against values computed by hand (the claims: tests/test_claims.py)."""
import json

import numpy as np
import pytest

from reports import paper
from reports.lasar_tables import write_table8
from reports.paper_compare import comparison_rows
from reports.table4 import table4_data, write_table4
from reports.table5 import table5_data, write_table5

from .conftest import results_at

METHODS = ("lasar", "cot_gream", "minionerec", "rearec", "lcrec", "gru4rec", "sasrec")
KEYS = ("NDCG@5", "NDCG@10", "NDCG@20", "HR@5", "HR@10", "HR@20")


def _method(root, name, value, lm=None, params=1000, rank_s=10.0):
    d = root / name
    d.mkdir(parents=True)
    metrics = {k: value for k in KEYS} | {"n_users": 100}
    (d / "metrics.json").write_text(json.dumps(metrics))
    lm = lm or {"backbone": "random", "hidden_size": 64, "lora": False}
    (d / "manifest.json").write_text(json.dumps({
        "display_name": name, "config_hash": "x", "seed": 1, "timings": {"rank_s": rank_s},
        "dataset": {"test_users": 100}, "config": {"shared": {"lm": lm}},
        "fit_info": {"parameters": params}}))


def _bench(root, plain, lasar, cot, reasoning=100.0):
    (root / "bench").mkdir(parents=True, exist_ok=True)
    m = {k: 0.01 for k in KEYS}
    (root / "bench" / "cot.json").write_text(json.dumps({
        "users": 10, "repeats": 1, "device": "cpu", "threads": 1, "mean_latent_steps": 2.0,
        "mean_reasoning_tokens": reasoning, "cot_max_new_tokens": 128,
        "ms_per_user": {"plain": plain, "lasar": lasar, "cot_direct": plain,
                        "cot_generation": cot},
        "cot_generation_over_lasar": cot / lasar, "lasar_over_plain": lasar / plain,
        "metrics": {k: m for k in ("plain", "lasar", "cot_direct", "cot_generation")}}))


def _studies(root, kl=0.02, none=0.01, cosine=0.005, mse=0.004, full_n=2.0, tkl_n=4.0):
    def row(v, mean_n=None):
        r = {k: v for k in KEYS} | {"n_users": 50}
        if mean_n is not None:
            r["n_dist"] = {"counts": [0] * 8, "mean": mean_n}
        return r
    st = {"eval_users": 50, "all_test_users": 100, "eval_user_ids": [],
          "rows": {"pure_sft": row(0.01), "sft_align_none": row(none),
                   "sft_align_kl": row(kl), "sft_align_cosine": row(cosine),
                   "sft_align_mse": row(mse), "rl_terminal_kl": row(0.02, tkl_n),
                   "rl_full": row(0.03, full_n), "force_1": row(0.025, 1.0),
                   "force_4": row(0.01, 4.0)},
          "figure3": {"stage2": [[1, 2.0], [2, 1.9]], "mixed": [[5, 3.0], [10, 2.5]],
                      "mixed_steps_per_epoch": 5},
          "n_dist_after_sft": {"counts": [0, 0, 6, 2, 2, 0, 0, 0], "mean": 3.6}}
    (root / "lasar").mkdir(parents=True, exist_ok=True)
    (root / "lasar" / "studies.json").write_text(json.dumps(st))


def _run(tmp_path, lasar_value=0.05):
    root = tmp_path / "sports" / "cpu"
    for i, m in enumerate(METHODS):
        _method(root, m, lasar_value if m == "lasar" else 0.02 + i * 0.001)
    return root


def test_paper_comparison_and_table4(tmp_path):
    root = _run(tmp_path)
    _studies(root)
    _bench(root, plain=10.0, lasar=11.0, cot=300.0)
    rows = {(r["table"], r["row"], r["field"]): r for r in comparison_rows(results_at(root))}
    r = rows[("table1", "lasar", "NDCG@10")]
    assert r["paper"] == paper.load()["table1"]["sports"]["lasar"]["NDCG@10"] == 0.0152
    assert r["ours"] == 0.05 and r["ratio"] == pytest.approx(0.05 / 0.0152)
    assert rows[("figure4b", "sft", "share_n3_n4")]["ours"] == pytest.approx(0.8)
    t = rows[("table4", "cot_generation", "total_s")]
    assert t["paper"] == 8.5 * 3600 and t["ours"] == pytest.approx(300.0 * 100 / 1000)
    assert rows[("table4", "lasar", "total_s")]["ours"] == 10.0     # measured rank_s
    d = table4_data(results_at(root))
    assert [x["total_measured"] for x in d["rows"]] == [True, True, False]
    assert d["rows"][2]["ratio_to_minionerec"] == pytest.approx(30.0)
    md = write_table4(results_at(root))[1].read_text()
    assert "| Explicit CoT (CoT Gen.) | 300.00 | 30.00x | 30.0 s† |" in md


def test_table5_labels_backbones(tmp_path):
    root = _run(tmp_path)
    assert table5_data(results_at(root)) is None                  # no larger-backbone runs: no table
    big = root / "_scaling" / "large"
    for m, v in (("lasar", 0.06), ("minionerec", 0.04), ("cot_gream", 0.03)):
        _method(big, m, v, lm={"backbone": "/models/Qwen3-1.7B", "lora": True}, params=None)
    d = table5_data(results_at(root))
    assert [s[1] for s in d["scales"]] == ["random Qwen3 0.00M full FT", "Qwen3-1.7B LoRA"]
    md = write_table5(results_at(root))[1].read_text()
    assert "| LASAR | **0.0500** | **0.0500** | **0.0600** | **0.0600** |" in md


def _predictions(folder, ranks):
    """predictions.jsonl whose target sits at `ranks[u]` (1-based; 0 = not in the top 20)."""
    lines = []
    for u, r in enumerate(ranks):
        topk = [f"i{j}" for j in range(20)]
        if r:
            topk[r - 1] = "t"
        lines.append(json.dumps({"user": str(u), "target": "t", "topk": topk}))
    (folder / "predictions.jsonl").write_text("\n".join(lines) + "\n")


def test_table5_gives_each_backbone_difference_with_its_interval(tmp_path):
    """The larger-backbone difference in Table 5's note is the hand-computed mean of per-user
    differences, paired by user, and its interval the shared bootstrap's; different test users
    on the two backbones stop the table with the folder named."""
    from protocol.stats import paired_difference
    root = _run(tmp_path)
    big = root / "_scaling" / "large"
    for m in ("lasar", "minionerec", "cot_gream"):
        _method(big, m, 0.03, lm={"backbone": "/models/Qwen3-1.7B", "lora": True}, params=None)
    small = [1, 0, 3, 0, 11, 2, 0, 0]            # ranks per user, profile backbone
    large = [1, 1, 0, 0, 2, 2, 0, 5]
    _predictions(root / "lasar", small)
    _predictions(big / "lasar", large)
    gain = lambda r: 1 / np.log2(r + 1) if 0 < r <= 10 else 0.0   # noqa: E731
    want_n = np.mean([gain(b) - gain(a) for a, b in zip(small, large)])
    want_hr = np.mean([(0 < b <= 10) - (0 < a <= 10) for a, b in zip(small, large)])
    d = paired_difference({"NDCG@10": ([gain(r) for r in large], [gain(r) for r in small]),
                           "HR@10": ([float(0 < r <= 10) for r in large],
                                     [float(0 < r <= 10) for r in small])})
    assert d["NDCG@10"]["diff"] == pytest.approx(want_n)
    assert d["HR@10"]["diff"] == pytest.approx(want_hr)
    md = write_table5(results_at(root))[1].read_text()
    n, hr = d["NDCG@10"], d["HR@10"]
    assert (f"LASAR on Qwen3-1.7B LoRA: N@10 {n['diff']:+.4f} [{n['lo']:+.4f}, {n['hi']:+.4f}], "
            f"HR@10 {hr['diff']:+.4f} [{hr['lo']:+.4f}, {hr['hi']:+.4f}]") in md
    assert "MiniOneRec on" not in md             # no predictions on either side: left out
    tex = (root / "tables" / "table5_scaling.tex").read_text()
    assert "95\\% bootstrap" in tex and "95% bootstrap" in md
    _predictions(big / "lasar", large[:-1])
    with pytest.raises(ValueError, match="test users differ"):
        write_table5(results_at(root))


def test_latex_notes_escape_what_latex_reads_as_commands():
    """A '%' in a note would comment out the rest of the line in LaTeX, a '_' is an error:
    both escaped in the .tex, never twice, and the Markdown keeps the text as written."""
    from reports.fmt import latex_table, markdown_table
    note = "95% interval; rl_full & N#1 costs $2; already 5\\% escaped"
    tex = latex_table(["A"], [["1"]], "c", "tab:x", [note])
    assert ("95\\% interval; rl\\_full \\& N\\#1 costs \\$2; already 5\\% escaped"
            in tex), tex
    assert note in markdown_table(["A"], [["1"]], "t", [note])


def test_table8_puts_the_label_histogram_beside_the_papers(tmp_path):
    """Table 8's output: our share per segment count (the Policy Head's labels) beside the
    paper's Sports shares (83.4 / 16.3 / 0.2% for 3 / 4 / 5), a count only one side has shown
    as 0 (ours) or '–' (the paper's), '%' escaped in LaTeX, both mean labels in the note."""
    root = _run(tmp_path)
    _studies(root)
    path = root / "lasar" / "studies.json"
    st = json.loads(path.read_text())
    st["table8"] = [{"segments": 3, "share": 0.6, "n": 6, "hist_len": 4.0, "cat_div": 3.5},
                    {"segments": 4, "share": 0.3, "n": 3, "hist_len": 6.0, "cat_div": 5.0},
                    {"segments": 6, "share": 0.1, "n": 1, "hist_len": 9.0, "cat_div": 8.0}]
    path.write_text(json.dumps(st))
    write_table8(results_at(root))
    md = (root / "tables" / "table8_segments.md").read_text()
    assert "| Segments | Prop. | Paper Prop. (Sports) | Hist. Len. | Paper Hist. Len. |" in md
    assert "| 3 | 60.0% | 83.4% | 4.0 | 6.9 | 3.5 | 6.2 |" in md
    assert "| 5 | 0.0% | 0.2% | – | 9.8 | – | 8.8 |" in md
    assert "| 6 | 10.0% | – | 9.0 | – | 8.0 | – |" in md
    assert "Mean label 3.60." in md and "a mean of 3.16." in md     # 3(.834) + 4(.163) + 5(.002)
    tex = (root / "tables" / "table8_segments.tex").read_text()
    assert r"3 & 60.0\% & 83.4\% & 4.0 & 6.9 & 3.5 & 6.2 \\" in tex


def test_baseline_strength_beside_the_published_numbers(tmp_path):
    """Our SASRec and GRU4Rec on every user of Beauty beside the published cross-entropy
    SASRec (published_baselines.yaml): the ratio to the strongest published value, a flag
    under 90% of it, a sensitivity row labelled with its --set pairs; on a user sample no
    ratio at all."""
    from reports.baseline_strength import published, write_baseline_strength
    root = tmp_path / "beauty" / "cpu-full"

    def folder(d, m, ndcg, hr, users=22363, variants=None, best=30):
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({"NDCG@10": ndcg, "HR@10": hr,
                                                    "n_users": users}))
        (d / "manifest.json").write_text(json.dumps({
            "display_name": m, "dataset": {"test_users": users, "users": 22363},
            "config": {"shared": {"history_len": 20, "sensitivity": {"variants": variants
                                                                     or {}}}},
            "fit_info": {"best_epoch": best, "epochs_run": best + 10, "stopped_early": True}}))
    best = {k: max(p[k] for p in published()["sasrec"]["beauty"]) for k in ("NDCG@10", "HR@10")}
    assert best == {"NDCG@10": 0.0416, "HR@10": 0.083}
    folder(root / "sasrec", "SASRec", 0.0333, 0.0747)          # 80% and 90% of them
    folder(root / "gru4rec", "GRU4Rec", 0.02, 0.04)
    folder(root / "_sensitivity" / "history_50" / "sasrec", "SASRec", 0.0400, 0.0800,
           variants={"history_50": ["history_len=50"]})
    md = write_baseline_strength(results_at(root))[1].read_text()
    rows = {r.split("|")[1].strip() + r.split("|")[2].strip()[:10]: r
            for r in md.splitlines() if r.startswith("| ")}
    ours = rows["SASRec (ours, Table 1)history 20"]
    assert "| 0.0333 | 0.0747 | 30 / 40 (stopped) | 0.80 | 0.90 | below 90% |" in ours
    assert "| 0.0400 | 0.0800 |" in rows["SASRec (ours, sensitivity)history_50"]
    assert "history_50: history_len=50" in md and "| 0.96 | 0.96 | no |" in md
    assert "| – | – | – |" in rows["GRU4Rec (ours, Table 1)history 20"]   # nothing published
    assert md.count("SASRec (published)") == 3 and "RecBole/issues/1290" in md
    sample = tmp_path / "beauty" / "cpu"
    folder(sample / "sasrec", "SASRec", 0.01, 0.02, users=8000)
    md = write_baseline_strength(results_at(sample))[1].read_text()
    assert "no ratio is computed" in md and "below 90%" not in md
