"""How a claim's comparisons become a verdict, in one place (PROTOCOL section 4, with the rules
a referee asks for: one error rate, multiplicity, seed variance, and no verdict on a mechanism
that did not act).

A comparison is one "A beats B" over the same users: the mean difference A - B, its two-sided
95% percentile bootstrap interval, the one-sided p in the claimed direction (`p`) and in the
other (`p_against`), and on one run the minimum detectable effect. Over several seeds it comes
from the two-level bootstrap (protocol/stats.py seed_difference: seeds, then users) and also
carries the per-seed differences and their t-interval. A claim's comparisons are one family:
their p-values are Holm-adjusted (`p_holm`, `p_against_holm`). A claim

  holds           when every comparison is significant in the claimed direction (p below
                  ALPHA_ONE_SIDED = 0.025, i.e. the 95% interval above zero): all must hold, so
                  no adjustment is needed (an intersection-union test);
  is contradicted when some comparison is significant the other way after Holm
                  (p_against_holm below 0.025);
  is inconclusive otherwise, with the MDE of what these users could have detected; over
                  2 seeds a pooled verdict is "inconclusive (too few seeds)" (MIN_SEEDS = 3);
                  a difference no larger than what a rerun of the same code and seed moves a
                  row (eval.rerun_spread, measured) is significant neither way;
  is untestable here when its mechanism had no signal in this run (protocol/stats.py
                  MIN_CHANGED_SHARE, MIN_RL_SIGNAL): the measurement is the evidence, the
                  comparisons are shown but not judged;
  is not measured when its data are missing.

Table 1's star keeps the paper's own convention (one-sided p < 0.05 against each of its
baselines: table1.py), and says so; the claims use the rule above.
"""
import numpy as np

from protocol.stats import (ALPHA_ONE_SIDED, MIN_CHANGED_SHARE, MIN_RL_SIGNAL, MIN_SEEDS, holm,
                            paired_difference, seed_difference)

HOLDS, CONTRADICTED = "holds", "contradicted"
INCONCLUSIVE, NOT_MEASURED = "inconclusive", "not measured"
UNTESTABLE = "untestable here"
TOO_FEW_SEEDS = "inconclusive (too few seeds)"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE, TOO_FEW_SEEDS, UNTESTABLE, NOT_MEASURED)
RULE = (f"holds: every comparison one-sided p < {ALPHA_ONE_SIDED} (95% interval above zero); "
        f"contradicted: one significant the other way after Holm; untestable here: every pair of "
        f"rows compared differs for < {MIN_CHANGED_SHARE:.0%} of users, or (RL) < "
        f"{MIN_RL_SIGNAL:.0%} of rollout groups had reward variance")


def claim(cid, text, source, rule, verdict, evidence, comparisons=(), **extra):
    return {"id": cid, "claim": text, "source": source, "rule": rule, "verdict": verdict,
            "evidence": evidence, "comparisons": list(comparisons), **extra}


METRIC_OF = {"N@10": "NDCG@10", "HR@10": "HR@10"}       # a label's last part -> its metric


def compare(pairs_by_seed, boot, spread=None):
    """pairs_by_seed: [{label: (a, b)} per seed] over the same users, each "a above b"; one
    seed: the paired bootstrap over users; several: the two-level bootstrap. The family's
    p-values Holm-adjusted; `spread` (eval.rerun_spread: metric -> how far a rerun moved a row)
    marks a difference no larger than it (`within_rerun_spread`). -> comparison records."""
    if len(pairs_by_seed) == 1:
        res = paired_difference(pairs_by_seed[0], *boot)
        out = [{"label": k, **v, "seeds": 1} for k, v in res.items()]
    else:
        out = [{"label": k, **v} for k, v in seed_difference(pairs_by_seed, *boot).items()]
    for c in out:
        limit = (spread or {}).get(METRIC_OF.get(c["label"].rsplit(", ", 1)[-1]))
        if limit is not None and abs(c["diff"]) <= limit:
            c["within_rerun_spread"] = limit
    return adjust(out)


def _significant(c, key):
    """Significant in that direction (key p: as claimed; p_against_holm: the other way),
    unless the difference is within what a rerun moves (not a finding)."""
    return c[key] < ALPHA_ONE_SIDED and "within_rerun_spread" not in c


def adjust(comparisons):
    """Holm-adjusted p in both directions over the family `comparisons` (in place)."""
    for key in ("p", "p_against"):
        for c, q in zip(comparisons, holm([c[key] for c in comparisons])):
            c[f"{key}_holm"] = q
    return comparisons


def judge(comparisons):
    """holds / contradicted / inconclusive (module docstring) from Holm-adjusted comparisons;
    a pooled family of fewer than MIN_SEEDS seeds is inconclusive (too few seeds)."""
    seeds = min((c.get("seeds", 1) for c in comparisons), default=1)
    if 1 < seeds < MIN_SEEDS:
        return TOO_FEW_SEEDS
    if any(_significant(c, "p_against_holm") for c in comparisons):
        return CONTRADICTED
    if comparisons and all(_significant(c, "p") for c in comparisons):
        return HOLDS
    return INCONCLUSIVE


def summary(comparisons):
    """One sentence: how many comparisons are significant each way (Holm for the other way),
    and the MDEs of those that are not."""
    up = sum(_significant(c, "p") for c in comparisons)
    down = sum(_significant(c, "p_against_holm") for c in comparisons)
    unclear = [c for c in comparisons if not (_significant(c, "p")
                                              or _significant(c, "p_against_holm"))]
    seeds = max((c.get("seeds", 1) for c in comparisons), default=1)
    text = (f"{len(comparisons)} comparison(s): {up} significant as claimed, {down} the other "
            f"way after Holm, {len(unclear)} neither")
    rerun = [c for c in comparisons if "within_rerun_spread" in c]
    if rerun:
        text += (f" ({len(rerun)} within what a rerun of the same code and seed moves a row, "
                 "eval.rerun_spread: not a finding)")
    if seeds > 1:
        text += f" (two-level bootstrap over {seeds} seeds and the users)"
    mdes = sorted(c["mde"] for c in unclear if c.get("mde") is not None)
    if mdes:
        rng = f"{mdes[0]:.4f}" + (f"-{mdes[-1]:.4f}" if mdes[-1] != mdes[0] else "")
        text += (f"; the users could have detected a difference of {rng} (MDE: 80% power, "
                 "two-sided alpha 0.05)")
    if any("mde" in c and c["mde"] is None for c in unclear):
        text += "; in some no user differs at all (nothing could be detected)"
    return text


def judged(cid, text, source, rule, comparisons, lead="", **extra):
    ev = (lead + "; " if lead else "") + summary(comparisons)
    return claim(cid, text, source, rule, judge(comparisons), ev, comparisons, **extra)


def changed_share(ranks_a, ranks_b):
    """The share of users whose target rank differs between two rows."""
    a, b = np.asarray(ranks_a), np.asarray(ranks_b)
    return float((a != b).mean()) if len(a) else 0.0


def rl_signal(rl_log):
    """What RL had to learn from, from its per-step log (studies.json "rl_log"): per step, the
    share of rollout groups whose G rewards vary (`signal`; older logs: `hit`, the share of
    groups holding the target, which for the rule + NDCG reward is the same thing). -> {"steps",
    "mean", "zero_steps"} (the mean share over steps, and the share of steps where no group
    varied), or None without a log."""
    vals = [r.get("signal", r.get("hit")) for r in (rl_log or []) if isinstance(r, dict)]
    vals = [float(v) for v in vals if isinstance(v, (int, float))]
    if not vals:
        return None
    return {"steps": len(vals), "mean": float(np.mean(vals)),
            "zero_steps": float(np.mean([v == 0 for v in vals]))}


def untestable_reason(changed=None, signal=None):
    """The measurement that makes a claim untestable here, or None: every pair of rows it
    compares differs for fewer than MIN_CHANGED_SHARE of the users (`changed`: {label:
    share}), or RL's groups had reward variance in fewer than MIN_RL_SIGNAL of the rollouts
    (`signal`: rl_signal)."""
    why = []
    if signal is not None and signal["mean"] < MIN_RL_SIGNAL:
        why.append(f"RL's rollout groups had reward variance in {signal['mean']:.1%} of cases "
                   f"(under {MIN_RL_SIGNAL:.0%}; none at all in {signal['zero_steps']:.0%} of "
                   f"its {signal['steps']} steps): GRPO's advantage was zero almost everywhere")
    if changed and all(v < MIN_CHANGED_SHARE for v in changed.values()):
        why.append("the compared rows rank the target differently for only "
                   + ", ".join(f"{v:.1%} ({k})" for k, v in changed.items())
                   + f" of the study users (under {MIN_CHANGED_SHARE:.0%})")
    return "; ".join(why) or None


def fmt_comparison_row(cid, x):
    """A comparisons-table row of claims.md."""
    mde = "–" if x.get("mde") is None else f"{x['mde']:.4f}"
    seeds = ""
    if x.get("seeds", 1) > 1:
        t = ("–" if x.get("t_lo") is None else f"[{x['t_lo']:+.4f}, {x['t_hi']:+.4f}]")
        seeds = (f"{x['seeds']}: " + ", ".join(f"{d:+.4f}" for d in x["per_seed"])
                 + f"; t {t}")
    return (f"| {cid} | {x['label']} | {x['diff']:+.4f} | [{x['lo']:+.4f}, {x['hi']:+.4f}] | "
            f"{x['p']:.4f} | {x['p_against_holm']:.4f} | {mde} | {seeds or '1'} |")


COMPARISONS_HEADER = ("| Claim | Comparison (claimed above zero) | Difference | 95% interval | "
                      "p | p other way (Holm) | MDE | Seeds |\n"
                      "|---|---|:---:|:---:|:---:|:---:|:---:|---|")

RULES_NOTE = (
    "Verdicts (one error rate: two-sided 95% intervals, one-sided p at 0.025): holds when "
    "every comparison is significant as claimed (p < 0.025: its 95% interval above zero), "
    "contradicted when one is significant the other way after Holm's adjustment over the "
    "claim's comparisons, inconclusive otherwise; untestable here when the claim's mechanism "
    f"had no signal in the run: every pair of rows compared differs for fewer than "
    f"{MIN_CHANGED_SHARE:.0%} of the users, or fewer than {MIN_RL_SIGNAL:.0%} of RL's rollout groups had reward "
    "variance (a group of equal rewards has zero advantage: no gradient). p is one-sided in "
    "the claimed direction (share of resamples with a difference <= 0); MDE = (z_0.975 + "
    "z_0.8) x sd(per-user difference) / sqrt(users), the smallest difference detectable with "
    "80% power at two-sided alpha 0.05. Over several seeds: a two-level bootstrap (seeds, "
    f"then users), the per-seed differences and their t-interval; fewer than {MIN_SEEDS} seeds "
    "give no pooled verdict. Table 1's star is the paper's convention (one-sided p < 0.05), "
    "not this rule.")
