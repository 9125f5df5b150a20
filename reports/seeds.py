"""Several seeds (`--seeds 42,43,44`): every method trained once per seed, each seed's results in
results/<ds>/<profile>/seed-<s>/ (its own tables and report.md), all scored on the same test
users. Here, in results/<ds>/<profile>/:

  tables/table1_seeds.{md,tex}   Table 1 as mean +- std over the seeds (sample std, ddof 1)
  tables/seed_claims.{md,json}   the paper's claims judged on all seeds at once
                                 (reports/claims.py on the seeds' RunResults): every comparison
                                 from the two-level bootstrap (seeds, then users:
                                 protocol/stats.py seed_difference), with the per-seed
                                 differences and their t-interval, Holm over each claim's
                                 comparisons; a pooled verdict needs at least 3 seeds
                                 ("inconclusive (too few seeds)" below); then each seed's own
                                 verdict of every claim
  report.md                      both, with links to each seed's report.md

Reads each seed's RunResults (read once by the pipeline) only.
"""
import json
from pathlib import Path

import numpy as np

from protocol.io import atomic_write_json, atomic_write_text
from protocol.metrics import METRIC_ORDER

from .claims import SHORT, claims, claims_markdown
from .fmt import latex_table, markdown_table
from .results import dataset_profile
from .table1 import DISPLAY, DISPLAY_MD, HEADER, row_order
from .verdicts import COMPARISONS_HEADER, compare, fmt_comparison_row, judge, summary


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


def lasar_versus(runs):
    """LASAR against every baseline with results in every seed on N@10 and HR@10 (the same
    comparisons as Table 1's claim, for the baselines a several-seed run trained), from the
    two-level bootstrap with Holm over them. -> comparison records, or the reason (a str)."""
    every = [m for m in row_order(sorted(set.intersection(*(set(r.methods)
                                                             for r in runs.values()))))
             if not m.startswith("external/")]
    if "lasar" not in every or len(every) < 2:
        return "LASAR or every baseline lacks results in some seed"
    per = [{m: r.methods[m].per_user((10,)) for m in every} for r in runs.values()]
    users = per[0]["lasar"][0]
    seeds = list(runs)
    other = {s: [m for m in every if p[m][0] != users] for s, p in zip(seeds, per)}
    other = {s: ms for s, ms in other.items() if ms}
    if other:
        # the usual cause: seeds run in separate invocations, each sampling its own users
        # (eval_seed defaults to the invocation's first seed)
        said = "; ".join(f"seed {s}: {', '.join(ms)}" for s, ms in other.items())
        return (f"other test users than seed {seeds[0]}'s were scored ({said}): run every "
                f"seed in one invocation, or rerun these with --set eval_seed={seeds[0]}")
    pairs = [{f"LASAR - {DISPLAY_MD.get(m, m)}, {SHORT[k]}": (p["lasar"][1][k], p[m][1][k])
              for m in every if m != "lasar" for k in SHORT} for p in per]
    first = next(iter(runs.values()))
    return compare(pairs, first.boot, first.eval.rerun_spread)


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
    verdicts = per_seed_verdicts(runs)
    versus = lasar_versus(runs)
    try:
        pooled = claims(list(runs.values()))
    except ValueError as e:                       # seeds scored or studied other users
        pooled = None
        why = str(e)
    lines = [f"**LASAR against each baseline trained in every seed ({len(seeds)} seeds)**", ""]
    if isinstance(versus, str):
        lines.append(f"Not measured: {versus}")
    else:
        v = judge(versus)
        lines += [f"Verdict over these comparisons (LASAR above each): **{v}**; "
                  + summary(versus) + ".", "", COMPARISONS_HEADER]
        lines += [fmt_comparison_row("lasar", x) for x in versus]
    lines += ["", f"**The paper's claims over {len(seeds)} seeds, pooled**", ""]
    if pooled is None:
        lines.append(f"Not measured: {why}")
    else:
        lines.append(claims_markdown(pooled, ds, f"{prof}, {len(seeds)} seeds: a two-level "
                                     "bootstrap over seeds and users"))
    lines += ["", "**The paper's claims in each seed** (each seed's tables/claims.md)", "",
              "| Claim | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---|" * len(seeds)]
    for cid, (text, by_seed) in verdicts.items():
        lines.append(f"| {text} | " + " | ".join(by_seed.get(s, "–") for s in seeds) + " |")
    p1, p2 = root / "tables" / "seed_claims.md", root / "tables" / "seed_claims.json"
    atomic_write_text(p1, "\n".join(lines) + "\n")
    atomic_write_json(p2, {"seeds": list(seeds),
                           "lasar_vs_baselines": None if isinstance(versus, str) else versus,
                           "pooled_claims": pooled,
                           "claims_per_seed": {k: v[1] for k, v in verdicts.items()}})
    paths += [p1, p2]
    report = [f"# {ds} ({prof} profile), {len(seeds)} seeds", "",
              (root / "tables" / "table1_seeds.md").read_text(), "", "\n".join(lines), "",
              "Each seed's own report: " + ", ".join(
                  f"[seed {s}](seed-{s}/report.md)" for s in seeds), ""]
    p = root / "report.md"
    atomic_write_text(p, "\n".join(report))
    return paths + [p]
