"""Several seeds (`--seeds 42,43,44`): every method trained once per seed, each seed's results in
results/<ds>/<profile>/seed-<s>/ (its own tables and report.md), all scored on the same test
users. Here, in results/<ds>/<profile>/:

  tables/table1_seeds.{md,tex}   Table 1 as mean +- std over the seeds (sample std, ddof 1)
  tables/seed_claims.{md,json}   LASAR against each baseline on N@10 and HR@10 with the
                                 seed-pooled paired bootstrap: each user's metric averaged over
                                 the seeds, then resampled over users (PROTOCOL section 4); the
                                 difference, its 95% interval, p and the minimum detectable
                                 effect, beside the spread of the difference across seeds; the
                                 claims on LASAR's study rows (alignment, REINFORCE, adaptive N)
                                 judged the same way on the seed-pooled rows (claims.py
                                 `study_claims`); and each seed's verdict of every claim
  report.md                      both, with links to each seed's report.md

A verdict "holds" / "contradicted" needs the pooled interval to exclude zero in that direction,
as in the one-seed claims (claims.py `judge`); otherwise "inconclusive". Reads results/ only.
"""
import json
from pathlib import Path

import numpy as np

from protocol.io import atomic_write_json, atomic_write_text
from protocol.metrics import METRIC_ORDER
from protocol.stats import paired_difference

from .claims import claims_markdown, judge, study_claims
from .fmt import latex_table, markdown_table
from .results import dataset_profile
from .study_data import row_per_user
from .table1 import DISPLAY, DISPLAY_MD, HEADER, row_order

CLAIM_METRICS = ("NDCG@10", "HR@10")


def seed_metrics(runs):
    """{method: {seed: metrics}} of every method with results in some seed's RunResults
    (`runs`: {seed: RunResults}), in Table 1's order."""
    names = row_order(sorted({m for r in runs.values() for m in r.methods}))
    return {m: {s: r.methods[m].metrics for s, r in runs.items() if m in r.methods}
            for m in names}


def table1_seeds(mets):
    """{method: {metric: (mean, std, seeds with results)}} from seed_metrics."""
    out = {}
    for m, by_seed in mets.items():
        vals = list(by_seed.values())
        out[m] = {k: (float(np.mean([v[k] for v in vals])),
                      float(np.std([v[k] for v in vals], ddof=1)) if len(vals) > 1 else None,
                      len(vals)) for k in METRIC_ORDER}
    return out


def pooled_per_user(runs, method, ks):
    """(users, {metric: (n,) per-user values averaged over the seeds}) of a method with results
    in every seed; the seeds must have scored the same users in the same order."""
    users, per, first = None, [], next(iter(runs))
    for s, r in runs.items():
        u, v = r.methods[method].per_user(ks)
        if users is not None and u != users:
            raise ValueError(f"{r.methods[method].folder}: test users differ from seed "
                             f"{first}'s; every seed must be scored on the same users "
                             "(eval_seed)")
        users = u
        per.append(v)
    return users, {k: np.mean([v[k] for v in per], axis=0) for k in per[0]}


def seed_claims(runs, eval_cfg):
    """LASAR against every baseline with results in every seed, seed-pooled (`runs`: {seed:
    RunResults}). -> (list of {baseline, metric, diff, lo, hi, p, mde, n, per_seed_diffs,
    seed_std, seeds_agree, verdict}, or [] with the reason they are not measured)."""
    mets, seeds = seed_metrics(runs), list(runs)
    every = [m for m, by_seed in mets.items() if len(by_seed) == len(seeds)]
    if "lasar" not in every:
        return [], "LASAR lacks results in some seed"
    ks = tuple(eval_cfg.ks)
    try:
        users, a = pooled_per_user(runs, "lasar", ks)
        per_b = {b: pooled_per_user(runs, b, ks) for b in every if b != "lasar"}
    except ValueError as e:
        return [], str(e)
    other = [b for b, (u, _) in per_b.items() if u != users]
    if other:
        return [], (f"{', '.join(other)} scored other test users than LASAR (a rerun with "
                    "another user sample?): rerun them on the same users")
    pairs, spread = {}, {}
    for b, (_, pb) in per_b.items():
        for k in CLAIM_METRICS:
            pairs[(b, k)] = (a[k], pb[k])
            spread[(b, k)] = [mets["lasar"][s][k] - mets[b][s][k] for s in seeds]
    res = paired_difference(pairs, eval_cfg.bootstrap_resamples, eval_cfg.bootstrap_seed)
    out = []
    for (b, k), r in res.items():
        d = spread[(b, k)]
        out.append({"baseline": b, "metric": k, **r, "per_seed_diffs": d,
                    "seed_std": float(np.std(d, ddof=1)) if len(d) > 1 else None,
                    "seeds_agree": bool(all(np.sign(x) == np.sign(r["diff"]) for x in d)),
                    "verdict": judge([r])})
    return out, None


def pooled_studies(runs, ks=(5, 10, 20)):
    """LASAR's studies.json of every seed (`runs`: {seed: RunResults}) as one: each row present
    in every seed gets its per-user metrics averaged over the seeds (`per_user`, what claims.py
    resamples), their means, and the N counts summed over seeds. None when a seed has no
    studies; the seeds must have studied the same users (eval_seed)."""
    sts = [r.studies for r in runs.values()]
    if not all(sts):
        return None
    ids, first = sts[0].get("eval_user_ids"), next(iter(runs))
    for s, st in zip(runs, sts):
        if st.get("eval_user_ids") != ids:
            raise ValueError(f"{runs[s].root / 'lasar' / 'studies.json'}: study users differ "
                             f"from seed {first}'s; every seed must study the same users "
                             "(eval_seed)")
    rows = {}
    for name in (n for n in sts[0].get("rows", {}) if all(n in st["rows"] for st in sts)):
        per = [row_per_user(st, name, ks) for st in sts]
        if any(p is None for p in per):
            continue
        pooled = {k: np.mean([p[k] for p in per], axis=0) for k in per[0]}
        row = {"per_user": pooled, **{k: float(v.mean()) for k, v in pooled.items()}}
        counts = [(st["rows"][name].get("n_dist") or {}).get("counts") for st in sts]
        if all(counts):
            c = np.sum(counts, axis=0)
            row["n_dist"] = {"counts": c.tolist(),
                             "mean": float(np.arange(1, len(c) + 1) @ c / max(c.sum(), 1))}
        rows[name] = row
    return {**{k: sts[0].get(k) for k in ("eval_users", "eval_user_ids", "n_mode", "teacher")},
            "rows": rows}


def per_seed_verdicts(runs):
    """{claim id: (claim text, {seed: verdict})} from each seed's tables/claims.json."""
    out = {}
    for s, r in runs.items():
        p = r.root / "tables" / "claims.json"
        if not p.is_file():
            continue
        for c in json.loads(p.read_text()):
            out.setdefault(c["id"], (c["claim"], {}))[1][s] = c["verdict"]
    return out


def _cell(mean, std):
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def write_seed_reports(root, runs, eval_cfg):
    """Write the seed-pooled tables and report.md under `root` from each seed's RunResults
    (`runs`: {seed: RunResults}, each written already); returns the paths."""
    root, seeds = Path(root), list(runs)
    mets = seed_metrics(runs)
    table = table1_seeds(mets)
    if not table:
        return []
    ds, prof = dataset_profile(root)
    paths = []
    notes = [f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), each method trained once per "
             "seed and scored on the same test users; mean ± sample std over seeds."]
    partial = [m for m, r in table.items() if r["NDCG@10"][2] < len(seeds)]
    if partial:
        notes.append("Fewer seeds: " + ", ".join(
            f"{DISPLAY_MD.get(m, m)} ({table[m]['NDCG@10'][2]} of {len(seeds)})"
            for m in partial) + ".")
    for style, ext in (("latex", "tex"), ("md", "md")):
        disp = DISPLAY if style == "latex" else DISPLAY_MD
        rows = [[disp.get(m, m)] + [_cell(*table[m][k][:2]) for k in METRIC_ORDER]
                for m in table]
        text = (latex_table(HEADER, rows, f"Main results on {ds} ({prof} profile) over "
                            f"{len(seeds)} seeds: mean $\\pm$ std.", f"tab:main-seeds-{ds}",
                            notes) if style == "latex"
                else markdown_table(HEADER, rows, f"Table 1 over seeds: {ds} ({prof} profile)",
                                    notes))
        p = root / "tables" / f"table1_seeds.{ext}"
        atomic_write_text(p, text)
        paths.append(p)
    claims, why_not = seed_claims(runs, eval_cfg)
    verdicts = per_seed_verdicts(runs)
    lines = [f"**LASAR against each baseline, seed-pooled ({len(seeds)} seeds)**", "",
             "Each user's metric averaged over the seeds, then a paired bootstrap over users "
             f"({eval_cfg.bootstrap_resamples} resamples): difference LASAR − baseline, 95% "
             "interval, one-sided p (LASAR above), minimum detectable effect (80% power); "
             "beside it the difference in each seed and its std over seeds; a verdict whose "
             "seeds do not all agree in sign with the pooled difference is marked.", "",
             "| Baseline | Metric | Difference [95% CI] | p | MDE | Per seed | Seed std | "
             "Verdict |", "|---|---|---|---|---|---|---|---|"]
    for c in claims:
        mde = "–" if c["mde"] is None else f"{c['mde']:.4f}"
        sd = "–" if c["seed_std"] is None else f"{c['seed_std']:.4f}"
        lines.append(f"| {DISPLAY_MD.get(c['baseline'], c['baseline'])} | {c['metric']} | "
                     f"{c['diff']:+.4f} [{c['lo']:+.4f}, {c['hi']:+.4f}] | {c['p']:.4f} | {mde} "
                     f"| {', '.join(f'{d:+.4f}' for d in c['per_seed_diffs'])} | {sd} | "
                     f"**{c['verdict']}**{'' if c['seeds_agree'] else ' (seeds disagree)'} |")
    if not claims:
        lines.append(f"| not measured: {why_not or 'no baseline has results in every seed'} "
                     "|||||||| ")
    try:
        pooled = pooled_studies(runs, tuple(eval_cfg.ks))
    except ValueError as e:                            # seeds that studied other users
        pooled = None
        lines += ["", f"Study claims, seed-pooled: not measured: {e}"]
    study = (study_claims(pooled, ds, (eval_cfg.bootstrap_resamples, eval_cfg.bootstrap_seed))
             if pooled else [])
    if study:
        lines += ["", claims_markdown(study, ds, f"{prof}, {len(seeds)} seeds pooled: each "
                                      "study user's metric averaged over the seeds")]
    lines += ["", "**The paper's claims in each seed** (each seed's tables/claims.md)", "",
              "| Claim | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---|" * len(seeds)]
    for cid, (text, by_seed) in verdicts.items():
        lines.append(f"| {text} | " + " | ".join(by_seed.get(s, "–") for s in seeds) + " |")
    p1, p2 = root / "tables" / "seed_claims.md", root / "tables" / "seed_claims.json"
    atomic_write_text(p1, "\n".join(lines) + "\n")
    atomic_write_json(p2, {"seeds": list(seeds), "lasar_vs_baselines": claims,
                           "study_claims": study,
                           "claims_per_seed": {k: v[1] for k, v in verdicts.items()}})
    paths += [p1, p2]
    report = [f"# {ds} ({prof} profile), {len(seeds)} seeds", "",
              (root / "tables" / "table1_seeds.md").read_text(), "", "\n".join(lines), "",
              "Each seed's own report: " + ", ".join(
                  f"[seed {s}](seed-{s}/report.md)" for s in seeds), ""]
    p = root / "report.md"
    atomic_write_text(p, "\n".join(report))
    return paths + [p]
