"""The paper's seven claims, each judged on a run's results with its uncertainty, or on several
seeds' runs pooled (reports/seeds.py). Reads RunResults only (predictions, metrics,
lasar/studies.json, bench/cot.json); writes tables/claims.{md,json}. How comparisons become a
verdict (one error rate, Holm, seeds, "untestable here"): reports/verdicts.py.

Every "A beats B" a claim makes is a comparison over the same users: Table 1's twelve (LASAR
against each of the six baselines on N@10 and HR@10, all test users), the alignment ablation
(KL against none, cosine, MSE), the RL ablation (REINFORCE against Terminal KL on N@10, HR@10
and the users' N), Figure 4a (the main adaptive row against each Force-N on HR@10; the argmax
row shown, not judged) and Figure 3's final models (two-stage against the equal-budget mixed
route on N@10 and HR@10). Figure 3 also weighs the examples each route needs to first reach
the other route's final validation loss; Table 4's ratios are judged on timed passes, each in
a fresh process.
"""
import numpy as np

from protocol.io import atomic_write_json, atomic_write_text
from protocol.stats import unpaired_difference

from .study_data import NO_ITEM_TEXT, adaptive_rows, n_values, no_item_text, row_per_user
from .table1 import DISPLAY_MD, PAPER_ORDER
from .table4 import table4_data
from .figure3 import race
from .verdicts import (COMPARISONS_HEADER, CONTRADICTED, HOLDS, INCONCLUSIVE, NOT_MEASURED,
                       RULE, RULES_NOTE, UNTESTABLE, VERDICTS, adjust, changed_share, claim,
                       compare, fmt_comparison_row, judge, judged, rl_signal, summary,
                       untestable_reason)

SHORT = {"NDCG@10": "N@10", "HR@10": "HR@10"}
MIN_PASSES = 3                   # Table 4: timed passes (each a fresh process) a verdict needs


def _rule(text):
    return f"{text}. {RULE}"


# ---------------------------------------------------------------------------------------------
# claims on users


def _table1_claim(runs, boot, spread):
    ds = runs[0].dataset
    text = f"LASAR is the best method on {ds.capitalize()}"
    rule = _rule("LASAR above each of the six baselines on N@10 and HR@10 (12 comparisons, "
                 "paired over all test users)")
    missing = sorted({m for r in runs for m in PAPER_ORDER if m not in r.methods})
    if missing:
        return claim("best", text, "Table 1", rule, NOT_MEASURED,
                     "missing rows: " + ", ".join(missing))
    try:
        per = [{m: r.methods[m].per_user((10,)) for m in PAPER_ORDER} for r in runs]
    except OSError as e:
        return claim("best", text, "Table 1", rule, NOT_MEASURED, f"no predictions: {e}")
    users = per[0]["lasar"][0]
    if any(p[m][0] != users for p in per for m in PAPER_ORDER):
        return claim("best", text, "Table 1", rule, NOT_MEASURED,
                     "the methods' test users differ (between methods or seeds); rerun on the "
                     "same split")
    pairs = [{f"LASAR - {DISPLAY_MD[m]}, {SHORT[k]}": (p["lasar"][1][k], p[m][1][k])
              for m in PAPER_ORDER[1:] for k in SHORT} for p in per]
    means = {m: float(np.mean([p[m][1]["NDCG@10"].mean() for p in per])) for m in PAPER_ORDER}
    best = max(means, key=means.get)
    lead = (f"N@10: LASAR {means['lasar']:.4f}, best {DISPLAY_MD[best]} {means[best]:.4f}; "
            f"{len(users)} test users")
    return judged("best", text, "Table 1", rule,
                  compare(pairs, boot, spread), lead)


def _studies(runs):
    """Every run's LASAR studies, or None when one lacks them or they studied other users."""
    sts = [r.studies for r in runs]
    if not all(st.get("rows") for st in sts):
        return None
    ids = sts[0].get("eval_user_ids")
    for r, st in zip(runs, sts):
        if st.get("eval_user_ids") != ids:
            raise ValueError(f"{r.root / 'lasar' / 'studies.json'}: studied other users than "
                             f"{runs[0].root.name}; every seed must study the same users "
                             "(eval_seed)")
    return sts


def _row_pairs(sts, spec, metrics=("NDCG@10", "HR@10")):
    """spec: [(label, row a, row b)] -> [{label, metric: (a, b)} per run], or None when a row
    has no per-user ranks in some run."""
    out = []
    for st in sts:
        per = {n: row_per_user(st, n) for _, a, b in spec for n in (a, b)}
        if any(v is None for v in per.values()):
            return None
        out.append({f"{lab}, {SHORT[k]}": (per[a][k], per[b][k]) for lab, a, b in spec
                    for k in metrics})
    return out


def _changed(sts, spec):
    """{label: share of study users whose target rank differs between the two rows} (first
    run; None where a row has no ranks)."""
    rows = sts[0]["rows"]
    return {lab: changed_share(rows[a]["ranks"], rows[b]["ranks"]) for lab, a, b in spec
            if rows.get(a, {}).get("ranks") and rows.get(b, {}).get("ranks")}


def _point_estimates(rows, names):
    return "; ".join(f"{n}: N@10 {rows[n]['NDCG@10']:.4f} HR@10 {rows[n]['HR@10']:.4f}"
                     for n in names if n in rows and "NDCG@10" in rows[n])


def _no_ranks(cid, text, source, rule, rows, names, **extra):
    return claim(cid, text, source, rule, NOT_MEASURED,
                 "no per-user ranks in studies.json (written before they were recorded; rerun "
                 "the studies); point estimates only: " + _point_estimates(rows, names),
                 **extra)


def _untestable(cid, text, source, rule, why, comparisons, lead="", **extra):
    """The claim's mechanism had no signal: the measurement is the verdict's evidence; the
    comparisons are shown, not judged."""
    ev = (lead + "; " if lead else "") + why + "; shown, not judged: " + summary(comparisons)
    return claim(cid, text, source, rule, UNTESTABLE, ev, comparisons, **extra)


def _alignment_claim(sts, ds, boot, spread):
    rows = sts[0]["rows"]
    tab = "Table 2" if ds == "beauty" else "Table 9"
    text = "KL is the only alignment that helps"
    rule = _rule("+KL alignment above + Latent (w/o align.), + Cosine and + MSE on N@10 and "
                 "HR@10; untestable when the teacher's chains carry no item information")
    need = ["sft_align_none", "sft_align_kl", "sft_align_cosine", "sft_align_mse"]
    blind = all(no_item_text(st) for st in sts)
    extra = {"caveat": NO_ITEM_TEXT} if blind else {}
    if not all(n in rows for n in need):
        return claim("kl_only", text, tab, rule, NOT_MEASURED, "alignment ablation rows "
                     "missing: " + ", ".join(n for n in need if n not in rows), **extra)
    spec = [(f"KL - {b.replace('sft_align_', '')}", "sft_align_kl", b)
            for b in ("sft_align_none", "sft_align_cosine", "sft_align_mse")]
    pairs = _row_pairs(sts, spec)
    if pairs is None:
        return _no_ranks("kl_only", text, tab, rule, rows, ["pure_sft"] + need, **extra)
    comps = compare(pairs, boot, spread)
    lead = f"{sts[0].get('eval_users')} study users"
    why = untestable_reason(changed=_changed(sts, spec))
    if blind:
        why = (f"{NO_ITEM_TEXT.capitalize()} (item-text share 0): there is nothing to align "
               "to" + (f"; {why}" if why else ""))
    if why:
        return _untestable("kl_only", text, tab, rule, why, comps, lead, **extra)
    return judged("kl_only", text, tab, rule, comps, lead, **extra)


def _signal(runs):
    """RL's reward signal pooled over the runs' RL logs (None without any)."""
    sig = [s for s in (rl_signal(r.studies.get("rl_log")) for r in runs) if s]
    if not sig:
        return None
    return {"steps": sum(s["steps"] for s in sig),
            "mean": float(np.mean([s["mean"] for s in sig])),
            "zero_steps": float(np.mean([s["zero_steps"] for s in sig]))}


def _ns(st, name):
    """A row's per-user N (`ns`), or None for a studies.json that has N counts only."""
    ns = (st["rows"].get(name) or {}).get("ns")
    return np.asarray(ns, dtype=float) if isinstance(ns, list) and ns else None


def _reinforce_claim(runs, sts, boot, spread):
    rows = sts[0]["rows"]
    text, rule = ("REINFORCE lowers the mean N while raising quality",
                  _rule("+REINFORCE above + Terminal KL on N@10 and HR@10, and its users' N "
                        "below"))
    a, b = rows.get("rl_terminal_kl"), rows.get("rl_full")
    if not (a and b and n_values(a) is not None and n_values(b) is not None):
        return claim("reinforce", text, "Table 3", rule, NOT_MEASURED, "RL ablation rows missing")
    spec = [("REINFORCE - Terminal KL", "rl_full", "rl_terminal_kl")]
    pairs = _row_pairs(sts, spec)
    if pairs is None:
        return _no_ranks("reinforce", text, "Table 3", rule, rows, ["rl_terminal_kl", "rl_full"])
    ns = [(_ns(st, "rl_terminal_kl"), _ns(st, "rl_full")) for st in sts]
    if all(x is not None and y is not None for x, y in ns):       # paired: the same users
        for p, (x, y) in zip(pairs, ns):
            p["N, Terminal KL - REINFORCE (paired per user)"] = (x, y)
        comps = compare(pairs, boot, spread)
    else:              # an older studies.json: N counts only, so one run and unpaired
        comps = compare(pairs[:1], boot, spread)
        comps.append({"label": "mean N, Terminal KL - REINFORCE (unpaired: N counts only)",
                      **unpaired_difference(n_values(a), n_values(b), *boot), "seeds": 1})
        adjust(comps)
    lead = f"mean N {a['n_dist']['mean']:.2f} -> {b['n_dist']['mean']:.2f}"
    sig = _signal(runs)
    if sig is not None:
        lead += (f"; RL's groups with reward variance {sig['mean']:.1%} (steps with none "
                 f"{sig['zero_steps']:.0%})")
    why = untestable_reason(_changed(sts, spec), sig)
    if why:
        return _untestable("reinforce", text, "Table 3", rule, why, comps, lead)
    return judged("reinforce", text, "Table 3", rule, comps, lead)


def _adaptive_claim(runs, sts, boot, spread):
    rows = sts[0]["rows"]
    text = "Adaptive N beats every forced N"
    rule = _rule("the main adaptive row (N as Table 1 decodes it: sampled, Section 3.4) above "
                 "every Force-N on HR@10; the other adaptive row (argmax N) is compared too, "
                 "shown but not judged; the head's N is what RL's REINFORCE trains (Section 3.4)")
    forced = sorted(int(n.split("_")[1]) for n in rows if n.startswith("force_"))
    adaptive = adaptive_rows(sts[0])
    if not (forced and adaptive):
        return claim("adaptive", text, "Figure 4a", rule, NOT_MEASURED, "Force-N rows missing")
    spec = [(f"{lab} - Force N={n}", r, f"force_{n}") for r, lab in adaptive for n in forced]
    pairs = _row_pairs(sts, spec, metrics=("HR@10",))
    names = [r for r, _ in adaptive] + [f"force_{n}" for n in forced]
    if pairs is None:
        return _no_ranks("adaptive", text, "Figure 4a", rule, rows, names)
    main = adaptive[0][0]
    judged_spec = [s for s in spec if s[1] == main]
    labels = {f"{lab}, HR@10" for lab, _, _ in judged_spec}
    comps = compare([{k: v for k, v in p.items() if k in labels} for p in pairs], boot,
                    spread)
    shown = compare([{k: v for k, v in p.items() if k not in labels} for p in pairs], boot,
                    spread)
    lead = "; ".join(f"{r} HR@10 {rows[r]['HR@10']:.4f}" for r in names)
    sig = _signal(runs)
    why = untestable_reason(_changed(sts, judged_spec), sig)
    out = (_untestable("adaptive", text, "Figure 4a", rule, why, comps, lead) if why
           else judged("adaptive", text, "Figure 4a", rule, comps, lead))
    out["comparisons"] += [{**c, "label": c["label"] + " (shown, not judged)"} for c in shown]
    return out


# ---------------------------------------------------------------------------------------------
# Figure 3: the equal-budget race; Table 4: timings


def _two_stage_claim(sts, boot, spread):
    text = "Two-stage training converges faster than mixed training"
    rule = _rule("at equal budgets (the mixed route from the backbone gets Stage 1's and Stage "
                 "2's optimizer steps and examples): two-stage reaches the best mixed run's "
                 "final validation loss while that run never reaches two-stage's (by more than "
                 "the curves' step-to-step spread), and its final model is not significantly "
                 "worse on the study users (N@10, HR@10, Holm); contradicted when the mixed "
                 "route gets there first or its final model is significantly better")
    r = [race(st.get("figure3")) for st in sts]
    if any(x is None for x in r):
        return claim("two_stage", text, "Figure 3", rule, NOT_MEASURED,
                     "no equal-budget race in studies.json (Figure 3 curves missing, or written "
                     "before the race: rerun LASAR's studies)")
    best = r[0]["best_mixed"]
    spec = [("two-stage - mixed", r[0]["two_stage_row"], best["row"])]
    pairs = _row_pairs(sts, spec)
    if pairs is None:
        return claim("two_stage", text, "Figure 3", rule, NOT_MEASURED,
                     "the two routes' final models have no per-user ranks")
    comps = compare(pairs, boot, spread)
    test_v = judge(comps)
    races = [x["verdict"] for x in r]
    if CONTRADICTED in races or test_v == CONTRADICTED:
        v = CONTRADICTED
    elif all(x == HOLDS for x in races) and test_v in (HOLDS, INCONCLUSIVE):
        v = HOLDS
    else:
        v = INCONCLUSIVE
    ev = ("; ".join(x["evidence"] for x in r) + "; final models on the study users: "
          + summary(comps))
    return claim("two_stage", text, "Figure 3", rule, v, ev, comps,
                 race=[{k: x[k] for k in ("two_stage", "mixed", "budget")} for x in r])


def _passes(b, mode):
    """ms per user of each timed pass (bench/cot.json "seconds"), or the one median."""
    secs = (b.get("seconds") or {}).get(mode)
    if isinstance(secs, list) and secs and all(s > 0 for s in secs):
        return [1000 * s / b["users"] for s in secs]
    return [b["ms_per_user"][mode]]


def _timing(b, num, den):
    """Per-pass ratios num / den (pass i of each pairs: the decoders alternate within a pass)
    with their min / median / max."""
    a, c = _passes(b, num), _passes(b, den)
    r = [x / y for x, y in zip(a, c)] if len(a) == len(c) else [float(np.median(a) / np.median(c))]
    return {"ratios": r, "min": min(r), "median": float(np.median(r)), "max": max(r),
            "ms": {num: [min(a), float(np.median(a)), max(a)],
                   den: [min(c), float(np.median(c)), max(c)]}}


def timing_verdict(ratios, lo, hi=np.inf, fresh=True):
    """holds when every pass's ratio lies in [lo, hi], contradicted when every one lies on the
    same side outside it; inconclusive otherwise, or with fewer than MIN_PASSES passes, or
    when the passes did not each run in a fresh process (their spread would leave out what
    moves between invocations)."""
    if len(ratios) < MIN_PASSES or not fresh:
        return INCONCLUSIVE
    if all(lo <= r <= hi for r in ratios):
        return HOLDS
    if all(r < lo for r in ratios) or all(r > hi for r in ratios):
        return CONTRADICTED
    return INCONCLUSIVE


def _timing_text(t, num, den, fresh, unit=".1f"):
    k = len(t["ratios"])
    where = "each in a fresh process" if fresh else "in one process (not fresh processes)"
    spread = (f"per pass min {t['min']:{unit}}x, median {t['median']:{unit}}x, max "
              f"{t['max']:{unit}}x over {k} passes {where}" if k > 1 else
              "one timed pass: its spread is not measured (set bench_cot.repeats to 3 or more)")
    ms = "; ".join(f"{m} {v[1]:.2f} ms per sample ({v[0]:.2f}-{v[2]:.2f})"
                   for m, v in t["ms"].items())
    return f"{t['median']:{unit}}x, {spread}; {ms}"


def _timing_claims(results):
    t4 = table4_data(results)
    tail = (f" in every one of at least {MIN_PASSES} timed passes, each in a fresh process")
    cot_rule = "CoT generation's time per sample at least 15x LASAR's" + tail + " (paper: > 20x)"
    ovh_rule = "LASAR / MiniOneRec time per sample within 1.00-1.20x" + tail
    cot_text, ovh_text = ("CoT generation is about 20x slower than LASAR",
                          "LASAR takes about 1.07-1.16x MiniOneRec's time")
    if not t4:
        why = "bench/cot.json missing (run ./run_all.sh with LASAR and Explicit CoT)"
        return [claim("cot_20x", cot_text, "Table 4", cot_rule, NOT_MEASURED, why),
                claim("lasar_overhead", ovh_text, "Table 4", ovh_rule, NOT_MEASURED, why)]
    b = t4["bench"]
    fresh = bool(b.get("fresh_processes"))
    cot, ovh = _timing(b, "cot_generation", "lasar"), _timing(b, "lasar", "plain")
    ev = (_timing_text(cot, "cot_generation", "lasar", fresh) + f"; {b['users']} users, "
          f"{b['mean_reasoning_tokens']:.0f} reasoning tokens on average")
    # a CoT model that closes </think> at once is not doing CoT generation: its time says
    # nothing about the claim (teacher CoTs are ~300 tokens; the cap is cot_max_new_tokens)
    if b["mean_reasoning_tokens"] >= 0.1 * b["cot_max_new_tokens"]:
        first = claim("cot_20x", cot_text, "Table 4", cot_rule,
                      timing_verdict(cot["ratios"], 15.0, fresh=fresh), ev, noise=cot)
    else:
        first = claim("cot_20x", cot_text, "Table 4", cot_rule, NOT_MEASURED,
                      f"the Explicit CoT model does not reason: {ev}, under 10% of the "
                      f"{b['cot_max_new_tokens']}-token cap; train it longer", noise=cot)
    second = claim("lasar_overhead", ovh_text, "Table 4", ovh_rule,
                   timing_verdict(ovh["ratios"], 1.0, 1.20, fresh),
                   _timing_text(ovh, "lasar", "plain", fresh, ".3f")
                   + f"; mean latent steps {b['mean_latent_steps']:.2f}", noise=ovh)
    return [first, second]


# ---------------------------------------------------------------------------------------------


def claims(runs):
    """The paper's claims on one run (a RunResults) or pooled over several seeds' runs (a
    list, same users), each with its verdict (reports/verdicts.py)."""
    runs = runs if isinstance(runs, list) else [runs]
    boot, ds = runs[0].boot, runs[0].dataset
    spread = runs[0].eval.rerun_spread        # a smaller difference is not a finding
    sts = _studies(runs)
    if sts is None:
        study = [claim(cid, text, src, "", NOT_MEASURED, "no LASAR studies.json in every run")
                 for cid, text, src in (
                     ("kl_only", "KL is the only alignment that helps", "Table 2/9"),
                     ("two_stage", "Two-stage training converges faster than mixed training",
                      "Figure 3"),
                     ("reinforce", "REINFORCE lowers the mean N while raising quality",
                      "Table 3"),
                     ("adaptive", "Adaptive N beats every forced N", "Figure 4a"))]
    else:
        study = [_alignment_claim(sts, ds, boot, spread),
                 _two_stage_claim(sts, boot, spread), _reinforce_claim(runs, sts, boot, spread),
                 _adaptive_claim(runs, sts, boot, spread)]
    return [_table1_claim(runs, boot, spread), *study, *_timing_claims(runs[0])]


def claims_markdown(cl, ds, prof):
    lines = [f"**The paper's claims on {ds} ({prof} profile)**", "",
             "| Claim | Source | Verdict | Evidence | Rule |", "|---|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['source']} | **{c['verdict']}** | {c['evidence']} | "
              f"{c['rule']} |" for c in cl]
    counts = {v: sum(c["verdict"] == v for c in cl) for v in VERDICTS}
    lines += ["", ", ".join(f"{counts[v]} {v}" for v in VERDICTS) + ".", "",
              COMPARISONS_HEADER]
    for c in cl:
        lines += [fmt_comparison_row(c["id"], x) for x in c["comparisons"]]
    lines += ["", RULES_NOTE, ""]
    return "\n".join(lines)


def write_claims(results):
    """tables/claims.{md,json} (the bootstrap settings are the run's eval settings)."""
    cl = claims(results)
    p1, p2 = results.root / "tables" / "claims.md", results.root / "tables" / "claims.json"
    atomic_write_text(p1, claims_markdown(cl, results.dataset, results.profile))
    atomic_write_json(p2, cl)
    return [p1, p2]
