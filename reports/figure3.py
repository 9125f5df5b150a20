"""Figure 3's race: two-stage training (Stage 1 from the backbone, then Stage 2) against the
single-stage mixed route (from the backbone, Stage 1's examples and the CoT pool under the
joint objective), given the same optimizer steps and examples, at one or more learning rates
(methods/lasar/studies.py writes the curves; the paper's Figure 3 compares 3e-4 and 5e-3).

studies.json["figure3"]:
  stage1        [[examples since the backbone, validation loss], ...]: Stage 1's plain
                answer CE on MiniOneRec's validation subsample
  stage2        the same axis, continuing after Stage 1: Stage 2's validation loss (answer CE
                after the latent loop on LASAR's validation examples)
  stage2_start  the examples Stage 1 used
  two_stage_row the study row of the two-stage route's final model (Stage 2, before RL)
  mixed         [{"scale", "lr", "row", "curve": [[examples, loss]], "steps", "examples"}]:
                each mixed run, its validation loss being Stage 2's on the same examples
  budget        {"steps", "examples"}: Stage 1's and Stage 2's together, the mixed route's cap

`race(figure3)` sets the two-stage route against the best mixed run (lowest final validation
loss): the examples each needs to first reach the other's final validation loss, and the
verdict those give (holds: the mixed run never gets down to two-stage's final loss within its
budget while two-stage reaches the mixed run's; contradicted: the other way round; a gap no
larger than the curves' own step-to-step spread is inconclusive).
"""
from .verdicts import CONTRADICTED, HOLDS, INCONCLUSIVE


def _points(curve):
    out = []
    for p in curve or []:
        if isinstance(p, (list, tuple)) and len(p) >= 2:
            try:
                out.append((float(p[0]), float(p[1])))
            except (TypeError, ValueError):
                continue
    return sorted(out)


def first_reach(curve, loss):
    """The examples at which `curve` first gets down to `loss` (None: never)."""
    return next((x for x, v in curve if v <= loss), None)


def _spread(curve, last=3):
    """The largest change between consecutive evaluations among a curve's last `last`."""
    v = [y for _, y in curve[-last:]]
    return max((abs(b - a) for a, b in zip(v, v[1:])), default=None)


def race(f3):
    """The race's numbers and verdict from studies.json["figure3"], or None without the
    equal-budget data (or from before it was recorded)."""
    if not isinstance(f3, dict) or not isinstance(f3.get("mixed"), list) or not f3["mixed"]:
        return None
    s2 = _points(f3.get("stage2"))
    mixed = [dict(m, curve=_points(m.get("curve"))) for m in f3["mixed"] if isinstance(m, dict)]
    mixed = [m for m in mixed if m["curve"]]
    if not (s2 and mixed and f3.get("two_stage_row") and f3.get("budget")):
        return None
    l_ts = min(v for _, v in s2)
    for m in mixed:
        m["final"] = min(v for _, v in m["curve"])
    best = min(mixed, key=lambda m: m["final"])
    e_ts = first_reach(s2, best["final"])          # two-stage reaching the mixed run's loss
    e_mx = first_reach(best["curve"], l_ts)        # the mixed run reaching two-stage's
    spreads = [x for x in (_spread(s2), _spread(best["curve"])) if x is not None]
    noise = max(spreads) if spreads else 0.0
    gap = best["final"] - l_ts
    if abs(gap) <= noise:
        v = INCONCLUSIVE
    elif gap > 0 and e_mx is None:
        v = HOLDS
    elif gap < 0 and e_ts is None:
        v = CONTRADICTED
    else:
        v = INCONCLUSIVE

    def ex(x):
        return "never within its budget" if x is None else f"{x:,.0f} examples"
    others = "; ".join(f"lr x{m['scale']:g} ({m['lr']:g}) final {m['final']:.3f}"
                       for m in mixed if m is not best)
    ev = (f"equal budgets of {f3['budget']['steps']:,} optimizer steps and "
          f"{f3['budget']['examples']:,} examples: two-stage final validation loss {l_ts:.3f}, "
          f"mixed (lr x{best['scale']:g} = {best['lr']:g}) {best['final']:.3f}"
          + (f" (other mixed runs: {others})" if others else "")
          + f"; two-stage reaches the mixed run's final loss at {ex(e_ts)}, the mixed run "
            f"reaches two-stage's at {ex(e_mx)}; the curves' step-to-step spread {noise:.3f}")
    return {"verdict": v, "evidence": ev, "two_stage_row": f3["two_stage_row"],
            "best_mixed": {k: best[k] for k in ("row", "scale", "lr", "final")},
            "two_stage": {"final": l_ts, "examples_to_mixed_final": e_ts},
            "mixed": {"final": best["final"], "examples_to_two_stage_final": e_mx,
                      "row": best["row"]},
            "budget": f3["budget"], "spread": noise}
