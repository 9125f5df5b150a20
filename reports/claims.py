"""The paper's seven claims, each judged on this run's results with its uncertainty (PROTOCOL
section 4, "Claims and ablations"). Reads only results/<dataset>/<profile>/ (predictions.jsonl,
metrics.json, lasar/studies.json, bench/cot.json); writes tables/claims.{md,json}.

Every "A beats B" a claim makes is one comparison: a paired bootstrap over the same users
(protocol/stats.paired_difference) gives the mean difference A - B, its 95%
percentile interval, the one-sided p in the claimed direction and the minimum detectable effect
(MDE: the smallest true difference a two-sided test at alpha 0.05 finds with 80% power on these
users). A claim

  holds          when every one of its comparisons has its interval above zero;
  is contradicted when any one has its interval below zero;
  is inconclusive otherwise (the evidence names the MDE of the comparisons that are not
                 significant);
  is not measured when its data are missing (a method, a study row, or per-user ranks in a
                 studies.json written before they were recorded: rerun the studies).

Figure 3 (validation loss of one training run) and Table 4 (timings) have no users to resample:
their verdicts weigh the margin against the measurement's own spread (the last evaluations'
step-to-step change; the spread of the alternating timed passes).
"""
import numpy as np

from protocol.io import atomic_write_json, atomic_write_text
from protocol.stats import paired_difference, unpaired_difference

from .study_data import NO_ITEM_TEXT, adaptive_rows, n_values, no_item_text, row_per_user
from .table1 import DISPLAY_MD, PAPER_ORDER
from .table4 import table4_data

HOLDS, CONTRADICTED = "holds", "contradicted"
INCONCLUSIVE, NOT_MEASURED = "inconclusive", "not measured"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED)
SHORT = {"NDCG@10": "N@10", "HR@10": "HR@10"}


def _claim(cid, text, source, rule, verdict, evidence, comparisons=(), **extra):
    return {"id": cid, "claim": text, "source": source, "rule": rule, "verdict": verdict,
            "evidence": evidence, "comparisons": list(comparisons), **extra}


# ---------------------------------------------------------------------------------------------
# judging comparisons


def _compare(pairs, boot):
    """pairs: {label: (a, b)} over the same users, "a above b" -> comparison records."""
    return [{"label": k, **v} for k, v in paired_difference(pairs, *boot).items()]


def judge(comparisons):
    """holds / contradicted / inconclusive from the comparisons' 95% intervals."""
    if any(c["hi"] < 0 for c in comparisons):
        return CONTRADICTED
    if all(c["lo"] > 0 for c in comparisons):
        return HOLDS
    return INCONCLUSIVE


def _summary(comparisons):
    """One sentence: how many comparisons are significant each way, and the MDEs of those
    that are not."""
    up = sum(c["lo"] > 0 for c in comparisons)
    down = sum(c["hi"] < 0 for c in comparisons)
    unclear = [c for c in comparisons if c["lo"] <= 0 <= c["hi"]]
    text = (f"{len(comparisons)} comparison(s): {up} with the 95% interval above zero, "
            f"{down} below, {len(unclear)} spanning zero")
    mdes = sorted(c["mde"] for c in unclear if c["mde"] is not None)
    if mdes:
        rng = f"{mdes[0]:.4f}" + (f"-{mdes[-1]:.4f}" if mdes[-1] != mdes[0] else "")
        text += (f"; the users could have detected a difference of {rng} (MDE: 80% power, "
                 "two-sided alpha 0.05)")
    if any(c["mde"] is None for c in unclear):
        text += "; in some no user differs at all (nothing could be detected)"
    return text


def _judged(cid, text, source, rule, comparisons, lead="", **extra):
    v = judge(comparisons)
    ev = (lead + "; " if lead else "") + _summary(comparisons)
    return _claim(cid, text, source, rule, v, ev, comparisons, **extra)


# ---------------------------------------------------------------------------------------------
# claims on users


def _table1_claim(results, boot):
    found = results.methods
    text = f"LASAR is the best method on {results.dataset.capitalize()}"
    rule = ("LASAR above each of the six baselines on N@10 and HR@10 (12 comparisons, paired "
            "over all test users)")
    missing = [m for m in PAPER_ORDER if m not in found]
    if missing:
        return _claim("best", text, "Table 1", rule, NOT_MEASURED,
                      "missing rows: " + ", ".join(missing))
    try:
        per = {m: found[m].per_user((10,)) for m in PAPER_ORDER}
    except OSError as e:
        return _claim("best", text, "Table 1", rule, NOT_MEASURED, f"no predictions: {e}")
    users, a = per["lasar"]
    if any(per[m][0] != users for m in PAPER_ORDER):
        return _claim("best", text, "Table 1", rule, NOT_MEASURED,
                      "the methods' test users differ; rerun on the same split")
    pairs = {f"LASAR - {DISPLAY_MD[m]}, {SHORT[k]}": (a[k], per[m][1][k])
             for m in PAPER_ORDER[1:] for k in SHORT}
    means = {m: float(per[m][1]["NDCG@10"].mean()) for m in PAPER_ORDER}
    best = max(means, key=means.get)
    lead = (f"N@10: LASAR {means['lasar']:.4f}, best {DISPLAY_MD[best]} {means[best]:.4f}; "
            f"{len(users)} test users")
    return _judged("best", text, "Table 1", rule, _compare(pairs, boot), lead)


def _point_estimates(rows, names):
    return "; ".join(f"{n}: N@10 {rows[n]['NDCG@10']:.4f} HR@10 {rows[n]['HR@10']:.4f}"
                     for n in names if n in rows and "NDCG@10" in rows[n])


def _no_ranks(cid, text, source, rule, rows, names, **extra):
    return _claim(cid, text, source, rule, NOT_MEASURED,
                  "no per-user ranks in studies.json (written before they were recorded; "
                  "rerun the studies); point estimates only: " + _point_estimates(rows, names),
                  **extra)


def _row_pairs(st, pairs_spec, metrics=("NDCG@10", "HR@10")):
    """pairs_spec: [(label, row a, row b)] -> {label, metric: (a, b)}, or None when a row has no
    per-user ranks."""
    per = {n: row_per_user(st, n) for _, a, b in pairs_spec for n in (a, b)}
    if any(v is None for v in per.values()):
        return None
    return {f"{lab}, {SHORT[k]}": (per[a][k], per[b][k]) for lab, a, b in pairs_spec
            for k in metrics}


def _alignment_claim(st, ds, boot):
    rows = st.get("rows", {})
    tab = "Table 2" if ds == "beauty" else "Table 9"
    text = "KL is the only alignment that helps"
    rule = "+KL alignment above + Latent (w/o align.), + Cosine and + MSE on N@10 and HR@10"
    need = ["sft_align_none", "sft_align_kl", "sft_align_cosine", "sft_align_mse"]
    extra = {"caveat": NO_ITEM_TEXT} if no_item_text(st) else {}
    lead = (NO_ITEM_TEXT.capitalize() + " (item-text share 0); ") if extra else ""
    if not all(n in rows for n in need):
        return _claim("kl_only", text, tab, rule, NOT_MEASURED, lead + "alignment ablation rows "
                      "missing: " + ", ".join(n for n in need if n not in rows), **extra)
    spec = [(f"KL - {b.replace('sft_align_', '')}", "sft_align_kl", b)
            for b in ("sft_align_none", "sft_align_cosine", "sft_align_mse")]
    pairs = _row_pairs(st, spec)
    if pairs is None:
        return _no_ranks("kl_only", text, tab, rule, rows, ["pure_sft"] + need, **extra)
    return _judged("kl_only", text, tab, rule, _compare(pairs, boot),
                   lead + f"{st.get('eval_users')} study users", **extra)


def _reinforce_claim(st, boot):
    rows = st.get("rows", {})
    text, rule = ("REINFORCE lowers the mean N while raising quality",
                  "+REINFORCE above + Terminal KL on N@10 and HR@10, and its mean N below")
    a, b = rows.get("rl_terminal_kl"), rows.get("rl_full")
    if not (a and b and n_values(a) is not None and n_values(b) is not None):
        return _claim("reinforce", text, "Table 3", rule, NOT_MEASURED, "RL ablation rows missing")
    pairs = _row_pairs(st, [("REINFORCE - Terminal KL", "rl_full", "rl_terminal_kl")])
    if pairs is None:
        return _no_ranks("reinforce", text, "Table 3", rule, rows, ["rl_terminal_kl", "rl_full"])
    comps = _compare(pairs, boot)
    comps.append({"label": "mean N, Terminal KL - REINFORCE (unpaired: the rows give N counts, "
                           "not N per user)",
                  **unpaired_difference(n_values(a), n_values(b), *boot)})
    lead = f"mean N {a['n_dist']['mean']:.2f} -> {b['n_dist']['mean']:.2f}"
    return _judged("reinforce", text, "Table 3", rule, comps, lead)


def _adaptive_claim(st, boot):
    rows = st.get("rows", {})
    text = "Adaptive N beats every forced N"
    rule = ("the main adaptive row (N as Table 1 decodes it: sampled, Section 3.4) above every "
            "Force-N on HR@10; the other adaptive row (argmax N) is compared too, shown but not "
            "judged")
    forced = sorted(int(n.split("_")[1]) for n in rows if n.startswith("force_"))
    adaptive = adaptive_rows(st)
    if not (forced and adaptive):
        return _claim("adaptive", text, "Figure 4a", rule, NOT_MEASURED, "Force-N rows missing")
    spec = [(f"{lab} - Force N={n}", r, f"force_{n}") for r, lab in adaptive for n in forced]
    pairs = _row_pairs(st, spec, metrics=("HR@10",))
    names = [r for r, _ in adaptive] + [f"force_{n}" for n in forced]
    if pairs is None:
        return _no_ranks("adaptive", text, "Figure 4a", rule, rows, names)
    lead = "; ".join(f"{r} HR@10 {rows[r]['HR@10']:.4f}" for r in names)
    judged = {f"{lab}, HR@10" for lab, r, _ in spec if r == adaptive[0][0]}
    comps = _compare(pairs, boot)
    claim = _judged("adaptive", text, "Figure 4a", rule,
                    [c for c in comps if c["label"] in judged], lead)
    claim["comparisons"] += [{**c, "label": c["label"] + " (shown, not judged)"}
                             for c in comps if c["label"] not in judged]
    return claim


# ---------------------------------------------------------------------------------------------
# claims without users: Figure 3 and Table 4


def _last_spread(curve, last=3):
    """Largest change between consecutive evaluations among a curve's last `last` ones."""
    v = [y for _, y in curve[-last:]]
    return max(abs(y - x) for x, y in zip(v, v[1:])) if len(v) > 1 else None


def _two_stage_claim(st):
    f3 = st.get("figure3") or {}
    text = "Two-stage training converges faster than mixed training"
    rule = ("the mixed run's best validation loss stays above Stage 2's first by more than the "
            "curves' own step-to-step spread (contradicted: below it by more)")
    if not (f3.get("stage2") and f3.get("mixed")):
        return _claim("two_stage", text, "Figure 3", rule, NOT_MEASURED, "Figure 3 curves missing")
    s2, mx = f3["stage2"], f3["mixed"]
    first, best = s2[0][1], min(v for _, v in mx)
    spreads = [s for s in (_last_spread(s2), _last_spread(mx)) if s is not None]
    noise = max(spreads) if spreads else None
    margin = best - first
    epochs = mx[-1][0] / (f3.get("mixed_steps_per_epoch") or 1)
    if noise is None:
        v = INCONCLUSIVE
    else:
        v = HOLDS if margin > noise else CONTRADICTED if margin < -noise else INCONCLUSIVE
    ev = (f"Stage 2 first validation loss {first:.3f} (best {min(x for _, x in s2):.3f}); mixed "
          f"best {best:.3f} after {epochs:.0f} epoch(s); margin {margin:+.3f}. Noise: one run "
          "(one seed), validation loss on a fixed validation set, so no interval over seeds; "
          + ("one evaluation per curve, so no spread to weigh the margin against" if noise is None
             else f"the largest step-to-step change among each curve's last three evaluations "
                  f"is {noise:.3f}"))
    return _claim("two_stage", text, "Figure 3", rule, v, ev, noise={"spread": noise,
                                                                   "margin": margin})


def _passes(b, mode):
    """ms per user of each timed pass (bench/cot.json "seconds"), or the one median."""
    secs = (b.get("seconds") or {}).get(mode)
    if isinstance(secs, list) and secs and all(s > 0 for s in secs):
        return [1000 * s / b["users"] for s in secs]
    return [b["ms_per_user"][mode]]


def _timing(b, num, den):
    """Per-pass ratios num / den (the passes alternate the decoders, so pass i of each pairs)
    with their min / median / max."""
    a, c = _passes(b, num), _passes(b, den)
    r = [x / y for x, y in zip(a, c)] if len(a) == len(c) else [float(np.median(a) / np.median(c))]
    return {"ratios": r, "min": min(r), "median": float(np.median(r)), "max": max(r),
            "ms": {num: [min(a), float(np.median(a)), max(a)],
                   den: [min(c), float(np.median(c)), max(c)]}}


def timing_verdict(ratios, lo, hi=np.inf):
    """holds when every pass's ratio lies in [lo, hi], contradicted when every one lies on the
    same side outside it, inconclusive otherwise or with a single pass (no spread)."""
    if len(ratios) < 2:
        return INCONCLUSIVE
    if all(lo <= r <= hi for r in ratios):
        return HOLDS
    if all(r < lo for r in ratios) or all(r > hi for r in ratios):
        return CONTRADICTED
    return INCONCLUSIVE


def _timing_text(t, num, den, unit=".1f"):
    k = len(t["ratios"])
    spread = (f"per pass min {t['min']:{unit}}x, median {t['median']:{unit}}x, max "
              f"{t['max']:{unit}}x over {k} alternating passes" if k > 1 else
              "one timed pass: its spread is not measured (set bench_cot.repeats to 3 or more)")
    ms = "; ".join(f"{m} {v[1]:.2f} ms per sample ({v[0]:.2f}-{v[2]:.2f})"
                   for m, v in t["ms"].items())
    return f"{t['median']:{unit}}x, {spread}; {ms}"


def _timing_claims(results):
    t4 = table4_data(results)
    cot_rule = ("CoT generation's time per sample at least 15x LASAR's in every timed pass "
                "(paper: over 20x)")
    ovh_rule = "LASAR / MiniOneRec time per sample within 1.00-1.20x in every timed pass"
    cot_text, ovh_text = ("CoT generation is about 20x slower than LASAR",
                          "LASAR takes about 1.07-1.16x MiniOneRec's time")
    if not t4:
        why = "bench/cot.json missing (run ./run_all.sh with LASAR and Explicit CoT)"
        return [_claim("cot_20x", cot_text, "Table 4", cot_rule, NOT_MEASURED, why),
                _claim("lasar_overhead", ovh_text, "Table 4", ovh_rule, NOT_MEASURED, why)]
    b = t4["bench"]
    cot, ovh = _timing(b, "cot_generation", "lasar"), _timing(b, "lasar", "plain")
    ev = (_timing_text(cot, "cot_generation", "lasar") + f"; {b['users']} users, "
          f"{b['mean_reasoning_tokens']:.0f} reasoning tokens on average")
    # a CoT model that closes </think> at once is not doing CoT generation: its time says
    # nothing about the claim (teacher CoTs are ~300 tokens; the cap is cot_max_new_tokens)
    if b["mean_reasoning_tokens"] >= 0.1 * b["cot_max_new_tokens"]:
        first = _claim("cot_20x", cot_text, "Table 4", cot_rule,
                       timing_verdict(cot["ratios"], 15.0), ev, noise=cot)
    else:
        first = _claim("cot_20x", cot_text, "Table 4", cot_rule, NOT_MEASURED,
                       f"the Explicit CoT model does not reason: {ev}, under 10% of the "
                       f"{b['cot_max_new_tokens']}-token cap; train it longer", noise=cot)
    second = _claim("lasar_overhead", ovh_text, "Table 4", ovh_rule,
                    timing_verdict(ovh["ratios"], 1.0, 1.20),
                    _timing_text(ovh, "lasar", "plain", ".3f")
                    + f"; mean latent steps {b['mean_latent_steps']:.2f}", noise=ovh)
    return [first, second]


# ---------------------------------------------------------------------------------------------


def study_claims(st, ds, boot):
    """The claims judged on LASAR's study rows (alignment, REINFORCE, adaptive N) of one
    studies.json, or of seed-pooled rows (reports/seeds.py); boot = (resamples, seed)."""
    return [_alignment_claim(st, ds, boot), _reinforce_claim(st, boot), _adaptive_claim(st, boot)]


def claims(results):
    """The paper's claims, each with a verdict from this run's results (module docstring)."""
    st, boot = results.studies, results.boot
    align, reinforce, adaptive = study_claims(st, results.dataset, boot)
    return [_table1_claim(results, boot), align, _two_stage_claim(st), reinforce, adaptive,
            *_timing_claims(results)]


def claims_markdown(cl, ds, prof):
    lines = [f"**The paper's claims on {ds} ({prof} profile)**", "",
             "| Claim | Source | Verdict | Evidence | Rule |", "|---|---|---|---|---|"]
    lines += [f"| {c['claim']} | {c['source']} | **{c['verdict']}** | {c['evidence']} | "
              f"{c['rule']} |" for c in cl]
    counts = {v: sum(c["verdict"] == v for c in cl) for v in VERDICTS}
    lines += ["", f"{counts[HOLDS]} hold, {counts[CONTRADICTED]} contradicted, "
                  f"{counts[INCONCLUSIVE]} inconclusive, {counts[NOT_MEASURED]} not measured.",
              "", "| Claim | Comparison (claimed above zero) | Difference | 95% interval | p | "
                  "MDE |", "|---|---|:---:|:---:|:---:|:---:|"]
    for c in cl:
        for x in c["comparisons"]:
            mde = "–" if x["mde"] is None else f"{x['mde']:.4f}"
            lines.append(f"| {c['id']} | {x['label']} | {x['diff']:+.4f} | [{x['lo']:+.4f}, "
                         f"{x['hi']:+.4f}] | {x['p']:.4f} | {mde} |")
    lines += ["", "Verdicts: holds when every comparison's 95% percentile paired-bootstrap "
                  "interval (same users) lies above zero, contradicted when any lies below, "
                  "inconclusive otherwise; p is one-sided in the claimed direction (share of "
                  "resamples with a difference <= 0); MDE = (z_0.975 + z_0.8) x sd(per-user "
                  "difference) / sqrt(users), the smallest difference detectable with 80% power "
                  "at two-sided alpha 0.05. Figure 3 and Table 4 weigh their margin against "
                  "their own measurement spread (in the evidence).", ""]
    return "\n".join(lines)


def write_claims(results):
    """tables/claims.{md,json} (the bootstrap settings are the run's eval settings)."""
    cl = claims(results)
    p1, p2 = results.root / "tables" / "claims.md", results.root / "tables" / "claims.json"
    atomic_write_text(p1, claims_markdown(cl, results.dataset, results.profile))
    atomic_write_json(p2, cl)
    return [p1, p2]
