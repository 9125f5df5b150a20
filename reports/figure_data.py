"""The numbers LASAR's paper figures plot, from results/<ds>/<profile>/lasar/studies.json
(written by methods/lasar/studies.py) and, for Figure 5b's error bars, lasar/predictions.jsonl;
reports/figures.py draws them. A figure whose data are absent or malformed is left out, never
the rest. Error bars are 95% intervals: percentile bootstrap over the study users from the rows'
per-user ranks (reports/study_data.py), none for a studies.json without ranks."""
import re

import numpy as np

from protocol.stats import bootstrap_interval, wilson_interval

from .study_data import (INTERVAL_RESAMPLES, INTERVAL_SEED, adaptive_rows, lambda_sweep,
                         rows_interval)

NAMES = ("figure3", "figure4a", "figure4b", "figure5a", "figure5b", "figure_lambda")


def _num(x):
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _curve(points):
    """[[step, loss], ...] -> sorted list of (step, loss) with finite numbers only."""
    out = []
    for p in points or []:
        if isinstance(p, (list, tuple)) and len(p) >= 2:
            s, v = _num(p[0]), _num(p[1])
            if s is not None and v is not None:
                out.append((s, v))
    return sorted(out)


def _fig3_data(s):
    """Figure 3 on one axis, examples since the backbone (reports/figure3.py): the two-stage
    route (Stage 1, then Stage 2) and each equal-budget mixed run."""
    f3 = s.get("figure3")
    if not isinstance(f3, dict) or "budget" not in f3:
        return None                       # none, or from before the equal-budget race
    s1, s2 = _curve(f3.get("stage1")), _curve(f3.get("stage2"))
    mixed = [{"label": f"Mixed, lr {m.get('lr'):g}", "curve": [list(p) for p in
                                                              _curve(m.get("curve"))]}
             for m in f3.get("mixed") or [] if isinstance(m, dict) and m.get("curve")]
    if not (s1 or s2 or mixed):
        return None
    return {"unit": "examples", "stage1": [list(p) for p in s1],
            "stage2": [list(p) for p in s2], "stage2_start": _num(f3.get("stage2_start")),
            "mixed": mixed, "budget": f3.get("budget")}


def _fig4a_data(s):
    rows = s.get("rows")
    if not isinstance(rows, dict):
        return None
    out = {}
    force = []
    for name in rows:
        m = re.fullmatch(r"force_(\d+)", str(name))
        if m:
            force.append((int(m.group(1)), name))
    for n, name in sorted(force):
        v = _num((rows.get(name) or {}).get("HR@10"))
        if v is not None:
            out[f"Force N={n}"] = (name, 100.0 * v)
    for name, label in adaptive_rows(s):
        v = _num((rows.get(name) or {}).get("HR@10"))
        if v is not None:
            out[label] = (name, 100.0 * v)
    return out or None


def _fig4a_ci(s, d):
    """{label: [lo %, hi %]} for the bars whose rows have per-user ranks."""
    ci = rows_interval(s, [name for name, _ in d.values()], "HR@10")
    return {lab: [100.0 * x for x in ci[name]] for lab, (name, _) in d.items() if name in ci}


def _n_users(s):
    rows = s.get("rows") or {}
    names = [n for n in rows if re.fullmatch(r"force_\d+", str(n))] + [n for n, _ in
                                                                        adaptive_rows(s)]
    for n in names:
        u = (rows.get(n) or {}).get("n_users")
        if isinstance(u, (int, float)):
            return int(u)
    return None


def _dist(d):
    if not isinstance(d, dict):
        return None
    counts = [_num(c) or 0.0 for c in (d.get("counts") or [])]
    total = sum(counts)
    if total <= 0:
        return None
    mean = _num(d.get("mean"))
    if mean is None:
        mean = sum((i + 1) * c for i, c in enumerate(counts)) / total
    return {"share": [100.0 * c / total for c in counts], "mean": mean, "n_users": int(total)}


def _fig4b_data(s):
    sft = _dist(s.get("n_dist_after_sft"))
    rl = _dist(s.get("n_dist_final_all_users")) or _dist(s.get("n_dist_final_subset"))
    if not (sft or rl):
        return None
    out = {}
    if sft:
        out["after_sft"] = sft
    if rl:
        out["after_rl"] = rl
    return out


def moving_average(values, window):
    """Trailing mean over the last `window` values (fewer at the start)."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return v
    w = max(1, int(window))
    c = np.concatenate([[0.0], np.cumsum(v)])
    i = np.arange(1, len(v) + 1)
    lo = np.maximum(0, i - w)
    return (c[i] - c[lo]) / (i - lo)


def _ma_window(n):
    return max(1, min(16, n // 8))


def _fig5a_data(s):
    log = s.get("rl_log")
    if not isinstance(log, list):
        return None
    pts = []
    for i, r in enumerate(log):
        if not isinstance(r, dict):
            continue
        step = _num(r.get("step"))
        pts.append((i + 1 if step is None else step, _num(r.get("mean_n")), _num(r.get("reward"))))
    pts.sort(key=lambda p: p[0])
    out = {}
    for key, j in (("mean_n", 1), ("reward", 2)):
        sv = [(p[0], p[j]) for p in pts if p[j] is not None]
        if sv:
            steps, vals = zip(*sv)
            w = _ma_window(len(vals))
            out[key] = {"step": list(steps), "value": list(vals), "window": w,
                        "moving_average": moving_average(vals, w).tolist()}
    return out or None


def _fig5b_data(s):
    per = s.get("per_n_all_users")
    if not isinstance(per, dict):
        return None
    hr, users = {}, {}
    for k, r in per.items():
        try:
            n = int(k)
        except (TypeError, ValueError):
            continue
        if not isinstance(r, dict):
            continue
        u = int(_num(r.get("n_users")) or 0)
        v = _num(r.get("HR@10"))
        if u > 0 and v is not None:
            hr[n], users[n] = 100.0 * v, u
    if not hr:
        return None
    hr = dict(sorted(hr.items()))
    users = dict(sorted(users.items()))
    overall = sum(hr[n] * users[n] for n in hr) / sum(users.values())
    return {"HR@10": hr, "n_users": users, "overall_HR@10": overall}


def _fig5b_ci(results, d):
    """Per-N 95% intervals of HR@10 (%), and how they were made: "bootstrap" over each N's
    users from lasar/predictions.jsonl (per-user latent_steps) when its N counts are
    per_n_all_users', else "wilson" from the hit counts (HR@10 x users), exact enough for a
    hit rate."""
    users = d["n_users"]
    try:
        lasar = results.methods["lasar"]
        ns = np.asarray(lasar.predictions().fields["latent_steps"])
        if len(ns) == sum(users.values()) and all((ns == n).sum() == u for n, u in users.items()):
            hit = lasar.per_user((10,))[1]["HR@10"]
            return {n: [100.0 * x for x in bootstrap_interval(
                {"hr": hit[ns == n]}, INTERVAL_RESAMPLES, INTERVAL_SEED)["hr"]]
                for n in users}, "bootstrap"
    except (OSError, KeyError, ValueError):
        pass
    return {n: [100.0 * x for x in wilson_interval(round(d["HR@10"][n] * u / 100), u)]
            for n, u in users.items()}, "wilson"


def _lambda_data(s):
    sweep = [r for r in lambda_sweep(s) if r["HR@10"] is not None and r["mean_n"] is not None]
    if not sweep:
        return None

    def pct(ci):
        return None if ci is None else [100.0 * x for x in ci]
    return {"lambda": [r["step_penalty"] for r in sweep],
            "configured": [r["configured"] for r in sweep],
            "mean_n": [r["mean_n"] for r in sweep], "mean_n_ci": [r["mean_n_ci"] for r in sweep],
            "HR@10": [100.0 * r["HR@10"] for r in sweep],
            "HR@10_ci": [pct(r["HR@10_ci"]) for r in sweep]}


def _safe(fn, *args):
    try:
        return fn(*args)
    except Exception:          # malformed section: skip that figure, never the rest
        return None


def figure_data(results):
    """Per figure, the numbers it plots (figures whose data are absent are left out):

      figure3   {"unit": "examples", "stage1": [[x, loss]], "stage2": [[x, loss]] (x
                 continues after Stage 1), "stage2_start": x, "mixed": [{"label", "curve":
                 [[x, loss]]}], "budget": {"steps", "examples"}}
      figure4a  {"Force N=1": HR@10 %, ..., "Adaptive (sampled N)": HR@10 %,
                 "Adaptive (argmax N)": HR@10 %}; figure4a_ci {label: [lo %, hi %]} for the
                 bars with per-user ranks; figure4a_n_users
      figure4b  {"after_sft"/"after_rl": {"share": [% per N=1..], "mean": N, "n_users": int}}
      figure5a  {"mean_n"/"reward": {"step", "value", "window", "moving_average"}}
      figure5b  {"HR@10": {N: %}, "n_users": {N: int}, "overall_HR@10": %, "ci": {N: [lo %,
                 hi %]}, "ci_kind": "bootstrap"|"wilson"}  (N with users only)
      figure_lambda  {"lambda": [...], "configured": [bool], "mean_n": [...], "mean_n_ci":
                 [[lo, hi]|None], "HR@10": [%], "HR@10_ci": [[lo %, hi %]|None]}, increasing
                 lambda
    """
    s = results.studies
    out = {}
    for name, fn in (("figure3", _fig3_data), ("figure4a", _fig4a_data),
                     ("figure4b", _fig4b_data), ("figure5a", _fig5a_data),
                     ("figure5b", _fig5b_data), ("figure_lambda", _lambda_data)):
        d = _safe(fn, s)
        if d:
            out[name] = d
    if "figure4a" in out:
        rows4 = out["figure4a"]
        out["figure4a"] = {lab: v for lab, (_, v) in rows4.items()}
        out["figure4a_ci"] = _safe(_fig4a_ci, s, rows4) or {}
        out["figure4a_n_users"] = _n_users(s)
    if "figure5b" in out:
        ci = _safe(_fig5b_ci, results, out["figure5b"]) or ({}, None)
        out["figure5b"]["ci"], out["figure5b"]["ci_kind"] = ci
    return out
