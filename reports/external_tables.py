"""External rows (`python -m benchmark score`: predictions made elsewhere) against LASAR and
the best baseline, from results/ only: tables/external_comparison.{md,tex}.

For each external row and each of LASAR and the best of the paper's six baselines (by N@10 on
this run), the paired difference external - other over the same test users on N@10 and HR@10,
its 95% percentile bootstrap interval and the one-sided p (external > other)
(protocol/stats.paired_difference). Table 1 shows the rows themselves; its p-value
table gives LASAR > external like every other row.
"""
from protocol.stats import paired_difference

from .fmt import write_table
from .table1 import DISPLAY_MD, PAPER_ORDER

METRICS = ("NDCG@10", "HR@10")


def best_baseline(methods):
    """The paper's baseline (not LASAR) with the highest N@10 among `methods`, or None."""
    base = [m for m in PAPER_ORDER[1:] if m in methods]
    return max(base, key=lambda m: methods[m].metrics["NDCG@10"]) if base else None


def external_comparisons(results):
    """[(external name, other method, {metric: summary})] for every external row."""
    found, ext = results.methods, results.external
    others = [m for m in ("lasar", best_baseline(found)) if m in found]
    if not ext or not others:
        return []
    per = {m: found[m].per_user((10,)) for m in others}
    out = []
    for name, row in ext.items():
        users, e = row.per_user((10,))
        pairs = {}
        for m in others:
            if per[m][0] != users:
                raise ValueError(f"{row.folder}: test users differ from {m}'s; score it on the "
                                 "folder's test users")
            for k in METRICS:
                pairs[(m, k)] = (e[k], per[m][1][k])
        d = paired_difference(pairs, *results.boot)
        out += [(name, m, {k: d[(m, k)] for k in METRICS}) for m in others]
    return out


def write_external_comparison(results):
    rows = external_comparisons(results)
    if not rows:
        return []
    ds, prof = results.dataset, results.profile
    best = best_baseline(results.methods)

    def name(m):
        return DISPLAY_MD.get(m, m) + (" (best baseline)" if m == best else "")
    body = []
    for ext, m, d in rows:
        disp = results.external[ext].manifest.get("display_name") or ext
        body.append([f"{disp} (external)", name(m)] + [
            f"{d[k]['diff']:+.4f} [{d[k]['lo']:+.4f}, {d[k]['hi']:+.4f}], p {d[k]['p']:.4f}"
            for k in METRICS])
    notes = [f"{ds}, {prof} profile, {rows[0][2]['NDCG@10']['n']} test users. External - other, "
             "paired over the same users: the mean difference, its 95% bootstrap interval "
             f"({results.eval.bootstrap_resamples} resamples) and the one-sided p (external > "
             "other). Best baseline: the paper's baseline with the highest N@10 here."]
    header = ["External row", "Against", "N@10 difference", "HR@10 difference"]
    return write_table(results.root, "external_comparison", header,
                       lambda style: body if style == "md" else
                       [[c.replace("_", r"\_") for c in r] for r in body],
                       f"External rows against LASAR and the best baseline, {ds} ({prof}).",
                       "External rows against LASAR and the best baseline", notes)
