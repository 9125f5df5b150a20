"""Per-user numbers of LASAR's studies and the intervals drawn from them, from
results/<ds>/<profile>/lasar/studies.json only (written by methods/lasar/studies.py):

  rows[name]["ranks"]    1-based rank of each study user's target in the row's top-k (0 when
                         absent; protocol/metrics.target_ranks), in the order of
                         studies.json["eval_user_ids"]
  rows[name]["n_dist"]   {"counts": [users per N = 1..n_max], "mean": N}
  lambda_sweep           [{"step_penalty": lambda, "row": name}] in increasing lambda (paper
                         Table 7: lambda in {1e-4, 5e-4, 1e-3}); the configured one is rl_full
  n_mode                 "sample" or "argmax": how the main row chose N
  teacher                {"kind", "item_text_share"}: the share of the CoT pool's examples whose
                         history items have item text (0.0 on Instruments)

A studies.json written before ranks were recorded gives None wherever per-user data are needed
(no intervals, no verdicts from it). Intervals are 95% percentile bootstrap intervals over the
study users, one set of INTERVAL_RESAMPLES resamples per call (protocol/stats.py).
"""
import numpy as np

from protocol.metrics import per_user
from protocol.stats import bootstrap_interval

INTERVAL_RESAMPLES, INTERVAL_SEED = 2000, 2026
NO_ITEM_TEXT = ("teacher chains written without item text: the anchors carry no item "
                "information")


def _rows(st):
    rows = st.get("rows") if isinstance(st, dict) else None
    return rows if isinstance(rows, dict) else {}


def main_adaptive(rows):
    """The main row: rl_full, or `adaptive` when the RL ablation is off (None: neither)."""
    return next((n for n in ("rl_full", "adaptive") if n in rows), None)


def adaptive_rows(st):
    """[(row, label)] of the final model's adaptive rows: the main one (N sampled or argmax,
    as studies.json["n_mode"] says) and the other mode's row (adaptive_argmax, or
    adaptive_sample when the main row took the argmax) if present."""
    rows = _rows(st)
    main = main_adaptive(rows)
    label = {"sample": "Adaptive (sampled N)", "argmax": "Adaptive (argmax N)"}
    out = [(main, label.get(st.get("n_mode"), "Adaptive"))] if main else []
    for mode in ("argmax", "sample"):
        if f"adaptive_{mode}" in rows and mode != st.get("n_mode"):
            out.append((f"adaptive_{mode}", label[mode]))
    return out


def n_study_users(st):
    ids = st.get("eval_user_ids")
    return len(ids) if isinstance(ids, list) and ids else st.get("eval_users")


def row_per_user(st, name, ks=(5, 10, 20)):
    """{metric: (n,) per-user values} of a study row from its ranks; None when the row has
    none (an older studies.json) or they do not match the study users."""
    row = _rows(st).get(name) or {}
    ranks = row.get("ranks")
    if not isinstance(ranks, list) or not ranks or len(ranks) != n_study_users(st):
        return None
    return per_user(np.asarray(ranks, dtype=int), ks)


def n_values(row):
    """The per-user N of a row, from its n_dist counts (order is lost: fine for a mean), or
    None without counts."""
    counts = ((row or {}).get("n_dist") or {}).get("counts")
    if not isinstance(counts, list) or not sum(counts):
        return None
    return np.repeat(np.arange(1, len(counts) + 1), np.asarray(counts, dtype=int))


def rows_interval(st, names, metric):
    """{row: (lo, hi)}: 95% bootstrap intervals of `metric` for the rows with ranks, all over
    one set of resamples of the study users."""
    cols = {n: per[metric] for n in names if (per := row_per_user(st, n)) is not None}
    return bootstrap_interval(cols, INTERVAL_RESAMPLES, INTERVAL_SEED)


def mean_n_interval(row):
    v = n_values(row)
    if v is None:
        return None
    return bootstrap_interval({"n": v}, INTERVAL_RESAMPLES, INTERVAL_SEED)["n"]


def lambda_sweep(st):
    """[{"step_penalty", "row", "configured", "n_users", "mean_n", "mean_n_ci", "NDCG@10",
    "NDCG@10_ci", "HR@10", "HR@10_ci"}] for the sweep's rows that exist, in increasing lambda
    (a _ci is None without per-user data)."""
    rows = _rows(st)
    sweep = [e for e in (st.get("lambda_sweep") or []) if isinstance(e, dict)
             and e.get("row") in rows and isinstance(e.get("step_penalty"), (int, float))]
    sweep.sort(key=lambda e: e["step_penalty"])
    names = [e["row"] for e in sweep]
    ci = {k: rows_interval(st, names, k) for k in ("NDCG@10", "HR@10")}
    out = []
    for e in sweep:
        r = rows[e["row"]]
        out.append({"step_penalty": float(e["step_penalty"]), "row": e["row"],
                    "configured": e["row"] == main_adaptive(rows), "n_users": r.get("n_users"),
                    "mean_n": (r.get("n_dist") or {}).get("mean"),
                    "mean_n_ci": mean_n_interval(r),
                    **{k: r.get(k) for k in ci}, **{f"{k}_ci": ci[k].get(e["row"]) for k in ci}})
    return out


def no_item_text(st):
    """True when the teacher wrote its chains without any item text (item_text_share 0)."""
    share = (st.get("teacher") or {}).get("item_text_share") if isinstance(st, dict) else None
    return isinstance(share, (int, float)) and share == 0
