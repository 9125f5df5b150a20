"""The claims' verdicts from hand-built results folders: a built clear win holds, a clear loss is
contradicted (after Holm), a difference of a couple of hits among 1,000 users is inconclusive
(with its minimum detectable effect), a mechanism with no signal is "untestable here" with its
measurement, and missing data or per-user ranks are "not measured"."""
import json

import numpy as np
import pytest

from protocol.metrics import summarize
from reports.build import write_report_md
from reports.claims import claims, timing_verdict, write_claims
from reports.study_data import NO_ITEM_TEXT
from reports.verdicts import adjust, judge

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
        "dataset": {"test_users": N, "users": N}, "config": {"shared": {"history_len": 20}},
        "fit_info": {}}))


def _row(hits, counts=None, ranks=True):
    r = {**summarize(np.array(_ranks(hits))), "n_users": N}
    if ranks:
        r["ranks"] = _ranks(hits)
    if counts is not None:
        r["n_dist"] = {"counts": counts,
                       "mean": sum((i + 1) * c for i, c in enumerate(counts)) / sum(counts)}
        r["ns"] = [n + 1 for n, c in enumerate(counts) for _ in range(c)]     # per user
    return r


def _race(mixed_curve, mixed_hits=60):
    """Figure 3's equal-budget race: Stage 2 ends at 1.88 (its last three evaluations change
    by at most 0.1); one mixed run at Stage 1's rate with the given curve."""
    return {"stage1": [[100, 4.0], [200, 3.0]], "stage2": [[260, 2.0], [320, 1.9], [380, 1.88]],
            "stage2_start": 200, "two_stage_row": "sft_align_kl",
            "budget": {"steps": 12, "examples": 380},
            "mixed": [{"scale": 1, "lr": 1e-3, "row": "mixed_x1", "curve": mixed_curve,
                       "steps": 12, "examples": 380}]}


FULL_N, TKL_N = [300, 400, 300, 0, 0, 0, 0, 0], [0, 100, 400, 500, 0, 0, 0, 0]   # mean 2.0, 3.4


def _studies(root, hits=None, ranks=True, **top):
    """studies.json with each row's hit count (defaults: every claim a clear win)."""
    h = {"pure_sft": 50, "sft_align_none": 50, "sft_align_kl": 150, "sft_align_cosine": 60,
         "sft_align_mse": 40, "rl_terminal_kl": 100, "rl_full": 200, "adaptive_argmax": 180,
         "force_1": 100, "force_4": 50, "mixed_x1": 60} | (hits or {})
    counts = {"rl_full": FULL_N, "rl_terminal_kl": TKL_N, "adaptive_argmax": FULL_N,
              "force_1": [N] + [0] * 7, "force_4": [0, 0, 0, N] + [0] * 4}
    st = {"eval_users": N, "all_test_users": N, "eval_user_ids": [str(u) for u in range(N)],
          "n_mode": "sample",
          "rows": {k: _row(v, counts.get(k), ranks) for k, v in h.items()},
          "figure3": _race([[120, 3.0], [250, 2.6], [380, 2.55]]),
          "rl_log": [{"step": i, "signal": 0.3, "reward": 0.1, "mean_n": 2.0}
                     for i in range(1, 9)],
          **top}
    (root / "lasar").mkdir(parents=True, exist_ok=True)
    (root / "lasar" / "studies.json").write_text(json.dumps(st))


def _bench(root, plain, lasar, cot, factors=(1.0, 1.05, 0.97), reasoning=100.0, users=10,
           fresh=True):
    """bench/cot.json with one timed pass per factor (each decoder's ms x factor), each in a
    fresh process (`fresh`)."""
    (root / "bench").mkdir(parents=True, exist_ok=True)
    ms = {"plain": plain, "lasar": lasar, "cot_direct": plain, "cot_generation": cot}
    m = {k: 0.01 for k in ("NDCG@10", "HR@10")}
    (root / "bench" / "cot.json").write_text(json.dumps({
        "users": users, "repeats": len(factors), "device": "cpu", "threads": 1,
        "fresh_processes": fresh,
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
    assert mean_n["label"] == "N, Terminal KL - REINFORCE (paired per user)"
    assert mean_n["diff"] == pytest.approx(3.4 - 2.0) and mean_n["lo"] > 0
    # Figure 3: both routes' final models, and the race's examples to each other's loss
    race = cl["two_stage"]["race"][0]
    assert race["two_stage"]["examples_to_mixed_final"] == 260       # Stage 2's first point
    assert race["mixed"]["examples_to_two_stage_final"] is None      # 2.55 never gets to 1.88
    assert cl["two_stage"]["comparisons"][1]["diff"] == pytest.approx((150 - 60) / N)  # HR@10
    # Holm: every comparison carries its adjusted p-values, never below the raw ones
    assert all(c["p_against_holm"] >= c["p_against"] for c in cl["best"]["comparisons"])
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
    # the rows are separate trainings: their 50 shared hits sit at another rank (so 5% of the
    # users' ranks differ: the comparison is testable, only too small to detect)
    path = root / "lasar" / "studies.json"
    st = json.loads(path.read_text())
    st["rows"]["sft_align_none"]["ranks"] = _ranks(50, rank=5)
    st["rows"]["rl_terminal_kl"]["ranks"] = _ranks(100, rank=5)
    path.write_text(json.dumps(st))
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


def test_figure3_is_an_equal_budget_race(tmp_path):
    """Two-stage ends at 1.88 with step-to-step changes of at most 0.1 in its last three
    evaluations; each mixed curve (same budget) against it, and the final models' test rows."""
    root = _run(tmp_path)
    st = json.loads((root / "lasar" / "studies.json").read_text())
    cases = [([[120, 3.0], [250, 2.6], [380, 2.55]], {}, "holds"),    # never reaches 1.88
             ([[120, 3.0], [250, 2.2], [380, 1.95]], {}, "inconclusive"),  # 0.07: in the spread
             ([[120, 1.5], [250, 1.2], [380, 1.1]], {}, "contradicted"),   # gets lower, sooner
             # two-stage ends lower, but its final model is worse on the test users
             ([[120, 3.0], [250, 2.6], [380, 2.55]], {"mixed_x1": 300}, "contradicted")]
    for curve, rows, want in cases:
        st["figure3"] = _race(curve)
        for name, hits in rows.items():
            st["rows"][name] = _row(hits)
        (root / "lasar" / "studies.json").write_text(json.dumps(st))
        c = next(c for c in claims(results_at(root, B)) if c["id"] == "two_stage")
        assert c["verdict"] == want, (curve, c["evidence"])
    st["figure3"] = {"stage2": [[1, 2.0]], "mixed": [[5, 3.0]],        # before the race
                     "mixed_steps_per_epoch": 5}
    (root / "lasar" / "studies.json").write_text(json.dumps(st))
    c = next(c for c in claims(results_at(root, B)) if c["id"] == "two_stage")
    assert c["verdict"] == "not measured" and "rerun LASAR's studies" in c["evidence"]


def test_timing_claims_weigh_every_pass(tmp_path):
    assert timing_verdict([27.0, 25.0, 28.0], 15) == "holds"
    assert timing_verdict([16.0, 14.0, 15.5], 15) == "inconclusive"
    assert timing_verdict([10.0, 12.0, 11.0], 15) == "contradicted"
    assert timing_verdict([27.0], 15) == "inconclusive"            # one pass: no spread
    assert timing_verdict([1.3, 1.25, 1.4], 1.0, 1.2) == "contradicted"
    assert timing_verdict([1.3, 1.25], 1.0, 1.2) == "inconclusive"  # under 3 passes
    assert timing_verdict([27.0, 25.0, 28.0], 15, fresh=False) == "inconclusive"
    root = _run(tmp_path)
    _bench(root, plain=10.0, lasar=11.0, cot=300.0, fresh=False)     # passes in one process
    c = {c["id"]: c for c in claims(results_at(root, B))}["cot_20x"]
    assert c["verdict"] == "inconclusive" and "not fresh processes" in c["evidence"]
    _bench(root, plain=10.0, lasar=11.0, cot=300.0, factors=(1.0,))
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    assert cl["cot_20x"]["verdict"] == cl["lasar_overhead"]["verdict"] == "inconclusive"
    assert "one timed pass" in cl["cot_20x"]["evidence"]
    _bench(root, plain=10.0, lasar=11.0, cot=300.0, reasoning=3.0)   # 27x, but no reasoning
    c = {c["id"]: c for c in claims(results_at(root, B))}["cot_20x"]
    assert c["verdict"] == "not measured" and "does not reason" in c["evidence"]
    (root / "bench" / "cot.json").unlink()
    assert _verdicts(root)["cot_20x"] == "not measured"


def test_judge_with_holm():
    """holds: every comparison p < 0.025 as claimed; contradicted: one below 0.025 the other
    way after Holm over the claim's comparisons (0.02 alone contradicts; beside a second
    comparison Holm doubles it to 0.04 and it does not); 2 seeds: too few for a verdict."""
    def c(p, p_against, seeds=1):
        return {"p": p, "p_against": p_against, "seeds": seeds}
    assert judge(adjust([c(0.001, 0.999), c(0.02, 0.98)])) == "holds"
    assert judge(adjust([c(0.001, 0.999), c(0.03, 0.97)])) == "inconclusive"
    assert judge(adjust([c(0.98, 0.02)])) == "contradicted"
    assert judge(adjust([c(0.98, 0.02), c(0.5, 0.5)])) == "inconclusive"       # 0.04 after Holm
    assert judge(adjust([c(0.99, 0.01), c(0.5, 0.5)])) == "contradicted"       # 0.02 after Holm
    assert judge(adjust([c(0.001, 0.999, 2)])) == "inconclusive (too few seeds)"
    assert judge(adjust([c(0.001, 0.999, 3)])) == "holds"


def test_a_difference_within_the_rerun_spread_is_not_a_finding(tmp_path):
    """LASAR 200 hits against LC-Rec's 90: +0.11 HR@10 holds, unless a rerun of the same code
    and seed is known to move a row by more than that (eval.rerun_spread)."""
    root = _run(tmp_path)
    assert claims(results_at(root, B))[0]["verdict"] == "holds"
    moved = claims(results_at(root, B, rerun_spread={"HR@10": 0.2}))[0]
    assert moved["verdict"] == "inconclusive" and "not a finding" in moved["evidence"]
    hr = [c for c in moved["comparisons"] if c["label"].endswith("HR@10")]
    assert all(c["within_rerun_spread"] == 0.2 for c in hr)
    assert not any("within_rerun_spread" in c for c in moved["comparisons"]
                   if c["label"].endswith("N@10"))
    # the study claims (alignment, the race, RL, adaptive N) compare retrained rows too: the
    # same rule marks every one of their ranking comparisons (not the mean-N ones)
    every = claims(results_at(root, B, rerun_spread={"NDCG@10": 1.0, "HR@10": 1.0}))
    studied = [c for c in every if c["id"] != "best" and c.get("comparisons")]
    assert {c["id"] for c in studied} >= {"kl_only", "two_stage", "reinforce", "adaptive"}
    for c in studied:
        ranked = [x for x in c["comparisons"] if x["label"].endswith(("N@10", "HR@10"))]
        assert ranked and all("within_rerun_spread" in x for x in ranked), c["id"]
        if c["id"] != "two_stage":           # the race is judged on its loss curves as well
            assert c["verdict"] not in ("holds", "contradicted"), c["id"]


def test_a_mechanism_without_signal_is_untestable_here(tmp_path):
    """RL whose groups never varied (GRPO's advantage zero) and rows that rank the target the
    same for all but a user: the RL claims are "untestable here" with both measurements, not
    inconclusive; with signal the same rows are judged."""
    quiet = [{"step": i, "signal": 0.0 if i % 3 else 0.01, "reward": 0.0} for i in range(1, 10)]
    root = _run(tmp_path, hits={"rl_full": 201, "rl_terminal_kl": 200}, rl_log=quiet)
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    for cid in ("reinforce", "adaptive"):
        assert cl[cid]["verdict"] == "untestable here", cl[cid]["evidence"]
        assert "RL's rollout groups had reward variance in 0.3%" in cl[cid]["evidence"]
        assert "none at all in 67% of its 9 steps" in cl[cid]["evidence"]
        assert cl[cid]["comparisons"]                                   # shown, not judged
    assert "0.1% (REINFORCE - Terminal KL)" in cl["reinforce"]["evidence"]
    root = _run(tmp_path / "b", hits={"rl_full": 201, "rl_terminal_kl": 200})
    cl = {c["id"]: c for c in claims(results_at(root, B))}
    assert cl["reinforce"]["verdict"] == "untestable here"            # rows differ for 0.1%
    assert "RL's rollout groups" not in cl["reinforce"]["evidence"]
    assert cl["adaptive"]["verdict"] == "holds"                        # RL had signal


def test_claims_files_and_the_item_text_caveat(tmp_path):
    root = _run(tmp_path, ds="instruments", hits={"sft_align_kl": 52},
                teacher={"kind": "template", "item_text_share": 0.0})
    write_claims(results_at(root))
    md = (root / "tables" / "claims.md").read_text()
    saved = json.loads((root / "tables" / "claims.json").read_text())
    assert [c["verdict"] for c in saved] == [c["verdict"] for c in claims(results_at(root))]
    kl = next(c for c in saved if c["id"] == "kl_only")
    assert kl["caveat"] == NO_ITEM_TEXT and NO_ITEM_TEXT.capitalize() in kl["evidence"]
    assert kl["verdict"] == "untestable here"          # nothing to align to: not judged
    counts = {v: sum(c["verdict"] == v for c in saved)
              for v in ("holds", "contradicted", "inconclusive", "untestable here")}
    assert (f"{counts['holds']} holds, {counts['contradicted']} contradicted, "
            f"{counts['inconclusive']} inconclusive") in md
    assert f"{counts['untestable here']} untestable here" in md
    assert "| kl_only | KL - none, HR@10 | +0.0020 | [" in md
    assert "Holm" in md and "Table 1's star is the paper's convention" in md
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
