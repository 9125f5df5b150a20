"""The claims' verdicts from hand-built results folders: a built clear win holds, a clear loss is
contradicted, a difference of a couple of hits among 1,000 users is inconclusive (with its
minimum detectable effect), and missing data or per-user ranks are "not measured"."""
import json

import numpy as np
import pytest

from protocol.metrics import summarize
from reports.build import write_report_md
from reports.claims import claims, judge, timing_verdict, write_claims
from reports.study_data import NO_ITEM_TEXT

from .conftest import results_at, write_tables
from .test_table1 import _write

N = 1000                  # users (test users = study users here)
METHODS = ("lasar", "cot_gream", "minionerec", "rearec", "lcrec", "gru4rec", "sasrec")
B = 2000                  # resamples (claims' default is 10,000)


def _ranks(hits, rank=3):
    """Users 0..hits-1 find their target at `rank`, the others not at all: rows built this way
    are paired, the one with more hits finding a superset of the other's."""
    return [rank] * hits + [0] * (N - hits)


def _method(root, name, hits):
    """A method folder (predictions, metrics, manifest) whose first `hits` users hit."""
    _write(root, name, name, _ranks(hits))
    (root / name / "manifest.json").write_text(json.dumps({
        "display_name": name, "config_hash": "x", "seed": 1, "timings": {"rank_s": 1.0},
        "dataset": {"test_users": N}}))


def _row(hits, counts=None, ranks=True):
    r = {**summarize(np.array(_ranks(hits))), "n_users": N}
    if ranks:
        r["ranks"] = _ranks(hits)
    if counts is not None:
        r["n_dist"] = {"counts": counts,
                       "mean": sum((i + 1) * c for i, c in enumerate(counts)) / sum(counts)}
    return r


FULL_N, TKL_N = [300, 400, 300, 0, 0, 0, 0, 0], [0, 100, 400, 500, 0, 0, 0, 0]   # mean 2.0, 3.4


def _studies(root, hits=None, ranks=True, **top):
    """studies.json with each row's hit count (defaults: every claim a clear win)."""
    h = {"pure_sft": 50, "sft_align_none": 50, "sft_align_kl": 150, "sft_align_cosine": 60,
         "sft_align_mse": 40, "rl_terminal_kl": 100, "rl_full": 200, "adaptive_argmax": 180,
         "force_1": 100, "force_4": 50} | (hits or {})
    counts = {"rl_full": FULL_N, "rl_terminal_kl": TKL_N, "adaptive_argmax": FULL_N,
              "force_1": [N] + [0] * 7, "force_4": [0, 0, 0, N] + [0] * 4}
    st = {"eval_users": N, "all_test_users": N, "eval_user_ids": [str(u) for u in range(N)],
          "n_mode": "sample",
          "rows": {k: _row(v, counts.get(k), ranks) for k, v in h.items()},
          "figure3": {"stage2": [[1, 2.0], [2, 1.9], [3, 1.88]],
                      "mixed": [[5, 3.0], [10, 2.6], [15, 2.55]], "mixed_steps_per_epoch": 5},
          **top}
    (root / "lasar").mkdir(parents=True, exist_ok=True)
    (root / "lasar" / "studies.json").write_text(json.dumps(st))


def _bench(root, plain, lasar, cot, factors=(1.0, 1.05, 0.97), reasoning=100.0, users=10):
    """bench/cot.json with one timed pass per factor (each decoder's ms x factor)."""
    (root / "bench").mkdir(parents=True, exist_ok=True)
    ms = {"plain": plain, "lasar": lasar, "cot_direct": plain, "cot_generation": cot}
    m = {k: 0.01 for k in ("NDCG@10", "HR@10")}
    (root / "bench" / "cot.json").write_text(json.dumps({
        "users": users, "repeats": len(factors), "device": "cpu", "threads": 1,
        "mean_latent_steps": 2.0, "mean_reasoning_tokens": reasoning, "cot_max_new_tokens": 128,
        "ms_per_user": ms, "cot_generation_over_lasar": cot / lasar,
        "lasar_over_plain": lasar / plain,
        "seconds": {k: [v * users / 1000 * f for f in factors] for k, v in ms.items()},
        "metrics": {k: m for k in ms}}))


def _run(tmp_path, lasar_hits=200, ds="sports", **studies):
    root = tmp_path / ds / "cpu"
    for i, m in enumerate(METHODS):
        _method(root, m, lasar_hits if m == "lasar" else 50 + 10 * i)
    _studies(root, **studies)
    _bench(root, plain=10.0, lasar=11.0, cot=300.0)
    return root


def _verdicts(root):
    return {c["id"]: c["verdict"] for c in claims(results_at(root, B))}


def test_clear_wins_hold(tmp_path):
    root = _run(tmp_path)
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    assert {k: c["verdict"] for k, c in cl.items()} == {
        "best": "holds", "kl_only": "holds", "two_stage": "holds", "reinforce": "holds",
        "adaptive": "holds", "cot_20x": "holds", "lasar_overhead": "holds"}
    # every comparison a claim makes, with the difference worked out by hand
    assert len(cl["best"]["comparisons"]) == 12
    lcrec = next(c for c in cl["best"]["comparisons"] if c["label"] == "LASAR - LC-Rec, HR@10")
    assert lcrec["diff"] == pytest.approx((200 - 90) / N) and lcrec["lo"] > 0
    kl = {c["label"]: c for c in cl["kl_only"]["comparisons"]}
    assert set(kl) == {f"KL - {b}, {k}" for b in ("none", "cosine", "mse")
                       for k in ("N@10", "HR@10")}
    assert kl["KL - cosine, HR@10"]["diff"] == pytest.approx(90 / N)
    mean_n = cl["reinforce"]["comparisons"][-1]
    assert mean_n["diff"] == pytest.approx(3.4 - 2.0) and mean_n["lo"] > 0
    # both adaptive rows against both forced N; the argmax row is shown, not judged
    assert [c["label"] for c in cl["adaptive"]["comparisons"]] == [
        "Adaptive (sampled N) - Force N=1, HR@10", "Adaptive (sampled N) - Force N=4, HR@10",
        "Adaptive (argmax N) - Force N=1, HR@10 (shown, not judged)",
        "Adaptive (argmax N) - Force N=4, HR@10 (shown, not judged)"]
    assert cl["cot_20x"]["noise"]["min"] == pytest.approx(300 / 11)


def test_a_couple_of_hits_among_a_thousand_users_is_inconclusive(tmp_path):
    """KL finds 2 more targets than no alignment among 1,000 users: +0.002 HR@10, under what
    these users can detect (MDE = 2.8016 x sd(d) / sqrt(1000), d = 1 for 2 users)."""
    root = _run(tmp_path, lasar_hits=52, hits={"sft_align_kl": 52, "sft_align_cosine": 40,
                                               "rl_full": 101, "adaptive_argmax": 102})
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    assert cl["kl_only"]["verdict"] == "inconclusive"
    close = next(c for c in cl["kl_only"]["comparisons"] if c["label"] == "KL - none, HR@10")
    d = np.array([1.0] * 2 + [0.0] * (N - 2))
    assert close["diff"] == pytest.approx(0.002)
    assert close["mde"] == pytest.approx(2.801585 * d.std(ddof=1) / N ** 0.5, rel=1e-5)
    assert close["lo"] <= 0 <= close["hi"]
    assert f"{close['mde']:.4f}" in cl["kl_only"]["evidence"]
    # LASAR 52 hits vs MiniOneRec's 70: a loss; vs LC-Rec's 90: a loss -> contradicted,
    # the REINFORCE and adaptive claims sit within a hit or two: inconclusive
    assert cl["best"]["verdict"] == "contradicted"
    assert cl["reinforce"]["verdict"] == cl["adaptive"]["verdict"] == "inconclusive"


def test_a_clear_loss_contradicts(tmp_path):
    """Cosine finds 100 more targets than KL; Force N=1 beats the sampled adaptive row."""
    root = _run(tmp_path, hits={"sft_align_cosine": 250, "rl_full": 60, "rl_terminal_kl": 20})
    v = _verdicts(root)
    assert v["kl_only"] == v["adaptive"] == "contradicted"
    assert v["best"] == v["reinforce"] == "holds"


def test_studies_without_ranks_are_not_measured(tmp_path):
    root = _run(tmp_path, ranks=False)
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    for cid in ("kl_only", "reinforce", "adaptive"):
        assert cl[cid]["verdict"] == "not measured"
        assert "no per-user ranks" in cl[cid]["evidence"] and "N@10" in cl[cid]["evidence"]
    assert cl["best"]["verdict"] == "holds"                  # Table 1 reads predictions.jsonl
    (root / "sasrec" / "metrics.json").unlink()
    assert _verdicts(root)["best"] == "not measured"


def test_figure3_margin_against_the_curves_spread(tmp_path):
    root = _run(tmp_path)
    st = json.loads((root / "lasar" / "studies.json").read_text())
    # Stage 2: first loss 2.0, last three evaluations change by at most 0.1
    cases = [([[5, 3.0], [10, 2.6], [15, 2.55]], "holds"),         # 0.55 above, spread 0.4
             ([[5, 3.0], [10, 2.2], [15, 2.1]], "inconclusive"),    # 0.1 above, spread 0.8
             ([[5, 1.5], [10, 1.2], [15, 1.1]], "contradicted"),    # 0.9 below, spread 0.3
             ([[5, 3.0]], "holds")]                                 # 1.0 above, spread 0.1
    for mixed, want in cases:
        st["figure3"]["mixed"] = mixed
        (root / "lasar" / "studies.json").write_text(json.dumps(st))
        c = next(c for c in claims(results_at(root, B)) if c["id"] == "two_stage")
        assert c["verdict"] == want, (mixed, c["evidence"])
    st["figure3"] = {"stage2": [[1, 2.0]], "mixed": [[5, 3.0]]}
    (root / "lasar" / "studies.json").write_text(json.dumps(st))
    c = next(c for c in claims(results_at(root, B)) if c["id"] == "two_stage")
    assert c["verdict"] == "inconclusive" and "no spread" in c["evidence"]


def test_timing_claims_weigh_every_pass(tmp_path):
    assert timing_verdict([27.0, 25.0, 28.0], 15) == "holds"
    assert timing_verdict([16.0, 14.0, 15.5], 15) == "inconclusive"
    assert timing_verdict([10.0, 12.0], 15) == "contradicted"
    assert timing_verdict([27.0], 15) == "inconclusive"            # one pass: no spread
    assert timing_verdict([1.3, 1.25], 1.0, 1.2) == "contradicted"
    root = _run(tmp_path)
    _bench(root, plain=10.0, lasar=11.0, cot=300.0, factors=(1.0,))
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    assert cl["cot_20x"]["verdict"] == cl["lasar_overhead"]["verdict"] == "inconclusive"
    assert "one timed pass" in cl["cot_20x"]["evidence"]
    _bench(root, plain=10.0, lasar=11.0, cot=300.0, reasoning=3.0)   # 27x, but no reasoning
    c = {c["id"]: c for c in claims(results_at(root, B))}["cot_20x"]
    assert c["verdict"] == "not measured" and "does not reason" in c["evidence"]
    (root / "bench" / "cot.json").unlink()
    assert _verdicts(root)["cot_20x"] == "not measured"


def test_judge():
    def c(lo, hi):
        return {"lo": lo, "hi": hi}
    assert judge([c(0.01, 0.02), c(0.001, 0.05)]) == "holds"
    assert judge([c(0.01, 0.02), c(-0.01, 0.05)]) == "inconclusive"
    assert judge([c(0.01, 0.02), c(-0.05, -0.01)]) == "contradicted"
    assert judge([c(0.0, 0.02)]) == "inconclusive"                  # touching zero: not above


def test_claims_files_and_the_item_text_caveat(tmp_path):
    root = _run(tmp_path, ds="instruments", hits={"sft_align_kl": 52},
                teacher={"kind": "template", "item_text_share": 0.0})
    write_claims(results_at(root))
    md = (root / "tables" / "claims.md").read_text()
    saved = json.loads((root / "tables" / "claims.json").read_text())
    assert [c["verdict"] for c in saved] == [c["verdict"] for c in claims(results_at(root))]
    kl = next(c for c in saved if c["id"] == "kl_only")
    assert kl["caveat"] == NO_ITEM_TEXT and NO_ITEM_TEXT.capitalize() in kl["evidence"]
    counts = {v: sum(c["verdict"] == v for c in saved)
              for v in ("holds", "contradicted", "inconclusive", "not measured")}
    assert (f"{counts['holds']} hold, {counts['contradicted']} contradicted, "
            f"{counts['inconclusive']} inconclusive, {counts['not measured']} not measured.") in md
    assert "| kl_only | KL - none, HR@10 | +0.0020 | [" in md
    write_tables(root)
    assert NO_ITEM_TEXT in (root / "tables" / "table9_alignment.md").read_text()
    assert NO_ITEM_TEXT in write_report_md(results_at(root)).read_text()
    other = _run(tmp_path / "b", teacher={"kind": "local", "item_text_share": 0.8})
    write_claims(results_at(other))
    write_tables(other)
    assert NO_ITEM_TEXT not in (other / "tables" / "claims.md").read_text()
    assert "80.0% of the CoT pool" in (other / "tables" / "table9_alignment.md").read_text()


def test_claims_across_datasets_mark_where_the_paper_makes_them(tmp_path):
    """results/claims-<profile>.md: one column per dataset with claims, the paper's own
    dataset(s) of a claim starred (Figure 4a: Sports only; Table 1: all)."""
    from reports.datasets import write_cross_dataset_claims
    for ds, v in (("sports", "holds"), ("beauty", "inconclusive")):
        t = tmp_path / ds / "cpu" / "tables"
        t.mkdir(parents=True)
        t.joinpath("claims.json").write_text(json.dumps([
            {"id": "best", "claim": f"LASAR is the best method on {ds.capitalize()}",
             "verdict": "contradicted"},
            {"id": "adaptive", "claim": "Adaptive N beats every forced N", "verdict": v}]))
    (tmp_path / "_cache").mkdir()
    md, js = write_cross_dataset_claims(tmp_path, "cpu")
    lines = md.read_text().splitlines()
    assert "| Claim | Sports | Beauty |" in lines
    assert "| LASAR is the best method | ★ contradicted | ★ contradicted |" in lines
    assert "| Adaptive N beats every forced N | ★ holds | inconclusive |" in lines
    assert json.loads(js.read_text())["verdicts"]["adaptive"] == {"sports": "holds",
                                                                  "beauty": "inconclusive"}
    assert write_cross_dataset_claims(tmp_path / "sports", "none") == []


def test_the_adaptive_claim_is_judged_on_the_sampled_row(tmp_path):
    """Section 3.4's claim is about adaptive sampling: an argmax head that collapsed onto N=1
    ties Force N=1 exactly, which neither stops the claim from holding nor decides it."""
    root = _run(tmp_path, hits={"adaptive_argmax": 100})          # = force_1's hits
    assert _verdicts(root)["adaptive"] == "holds"
    root = _run(tmp_path / "b", hits={"rl_full": 101, "adaptive_argmax": 300})
    assert _verdicts(root)["adaptive"] == "inconclusive"


def test_adaptive_rows_name_the_other_mode_whichever_the_main_row_took():
    """The studies decode the final model in the mode Table 1 did not use beside the main row:
    adaptive_argmax when it sampled, adaptive_sample when it took the argmax; both are shown."""
    from reports.study_data import adaptive_rows
    rows = {"rl_full": {}, "adaptive_argmax": {}, "adaptive_sample": {}}
    assert adaptive_rows({"n_mode": "sample", "rows": rows}) == [
        ("rl_full", "Adaptive (sampled N)"), ("adaptive_argmax", "Adaptive (argmax N)")]
    assert adaptive_rows({"n_mode": "argmax", "rows": rows}) == [
        ("rl_full", "Adaptive (argmax N)"), ("adaptive_sample", "Adaptive (sampled N)")]
