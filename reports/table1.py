"""Table 1: main results (paper Table 1), from results/ only.

Rows in the paper's order, then other registered methods (LatentR3), then external rows
(`python -m benchmark score`); best per column in bold, second underlined. When LASAR has
results, a one-sided paired bootstrap p-value (LASAR > row) is computed for every other row and
metric over the same test users; Table 1 marks LASAR's cell with * when p < 0.05 against each
of the paper's baselines present (the paper's claim; the other rows do not decide it), and a
companion table lists every p-value.
"""
from protocol.io import atomic_write_text
from protocol.metrics import METRIC_ORDER
from protocol.stats import paired_bootstrap

from .fmt import MARKS_NOTE, cell, latex_table, markdown_table, rank_marks

PAPER_ORDER = ("lasar", "cot_gream", "minionerec", "rearec", "lcrec", "gru4rec", "sasrec")
DISPLAY = {"lasar": "LASAR", "cot_gream": r"Explicit CoT$_{\mathrm{GREAM}}$",
           "minionerec": "MiniOneRec", "rearec": "ReaRec", "lcrec": "LC-Rec",
           "gru4rec": "GRU4Rec", "sasrec": "SASRec"}
DISPLAY_MD = {**DISPLAY, "cot_gream": "Explicit CoT (GREAM)"}
HEADER = ["Model", "N@5", "N@10", "N@20", "HR@5", "HR@10", "HR@20"]


EXTERNAL = "external/"          # key prefix of a row scored from outside predictions


def row_order(names):
    """The paper's seven, then other registered methods, then external rows."""
    known = [m for m in PAPER_ORDER if m in names]
    return known + sorted(m for m in names if m not in PAPER_ORDER and
                          not m.startswith(EXTERNAL)) + sorted(m for m in names
                                                               if m.startswith(EXTERNAL))


def label(m, man, style):
    disp = DISPLAY if style == "latex" else DISPLAY_MD
    if m.startswith(EXTERNAL):
        return f"{man.get('display_name') or m[len(EXTERNAL):]} (external)"
    return disp.get(m, man.get("display_name") or m)


def significance(results):
    """{row: {metric: p}} for LASAR against each other row of Table 1 (one-sided paired
    bootstrap over the same test users), or {} without LASAR; computed once per results."""
    return results.shared("table1_pvalues", lambda: _significance(results))


def _significance(results):
    rows = results.rows()
    if "lasar" not in rows:
        return {}
    ks = tuple(results.eval.ks)
    users_a, a = rows["lasar"].per_user(ks)
    bs = {}
    for m, row in rows.items():
        if m == "lasar":
            continue
        users_b, b = row.per_user(ks)
        if users_b != users_a:
            raise ValueError(f"{row.folder}: test users differ from LASAR's; rerun on the same "
                             "split")
        bs[m] = b
    return paired_bootstrap(a, bs, *results.boot)


def write_table1(results):
    """tables/table1.{tex,md}; returns the paths."""
    rows = results.rows()
    if not rows:
        return []
    names = row_order(rows)
    metrics = {m: rows[m].metrics for m in names}
    mans = {m: rows[m].manifest for m in names}
    pvals = significance(results)
    # the star is the paper's claim: LASAR above each of the paper's baselines (rows beyond the
    # paper's seven, LatentR3 and external ones, get their p-values but do not decide it)
    paper_p = [p for b, p in pvals.items() if b in PAPER_ORDER]
    cols = {k: rank_marks([metrics[m][k] for m in names]) for k in METRIC_ORDER}
    n_users = sorted({metrics[m]["n_users"] for m in names})
    dataset, profile = results.dataset, results.profile
    missing = [DISPLAY_MD[m] for m in PAPER_ORDER if m not in rows]
    notes = [f"{dataset}, profile {profile}, {', '.join(map(str, n_users))} test users, "
             f"seed {mans[names[0]]['seed']}; full-catalog ranking, leave-one-out.", MARKS_NOTE]
    if missing:
        notes.append("Not run (missing): " + ", ".join(missing) + ".")
    if pvals:
        sig_any = paper_p and any(all(p[k] < 0.05 for p in paper_p) for k in METRIC_ORDER)
        test = (f"one-sided paired bootstrap, {results.eval.bootstrap_resamples} resamples; "
                "p-values in table1_pvalues")
        notes.append(f"* LASAR better than each of the paper's baselines here at p < 0.05 ({test})."
                     if sig_any else f"LASAR is better than each of the paper's baselines here "
                     f"at p < 0.05 on no metric ({test}).")
    out = []
    for style, ext in (("latex", "tex"), ("md", "md")):
        body = []
        for i, m in enumerate(names):
            row = [label(m, mans[m], style)]
            for k in METRIC_ORDER:
                sig = m == "lasar" and paper_p and all(p[k] < 0.05 for p in paper_p)
                row.append(cell(metrics[m][k], cols[k][i], style, suffix="*" if sig else ""))
            body.append(row)
        text = (latex_table(HEADER, body, f"Main results on {dataset} ({profile} profile). Best "
                            r"in \textbf{bold}, second \underline{underlined}.",
                            f"tab:main-{dataset}", notes) if style == "latex"
                else markdown_table(HEADER, body, f"Table 1: main results, {dataset} "
                                    f"({profile} profile)", notes))
        path = results.root / "tables" / f"table1.{ext}"
        atomic_write_text(path, text)
        out.append(path)
    return out


def write_table1_pvalues(results):
    """tables/table1_pvalues.{tex,md}: every p-value behind Table 1's star; [] without LASAR."""
    pvals = significance(results)
    if not pvals:
        return []
    rows = results.rows()
    names = row_order(rows)
    dataset, profile = results.dataset, results.profile
    out = []
    for style, ext in (("latex", "tex"), ("md", "md")):
        prow = [[label(b, rows[b].manifest, style)] + [f"{pvals[b][k]:.4f}" for k in METRIC_ORDER]
                for b in names if b in pvals]
        ptext = (latex_table(HEADER, prow, f"One-sided paired bootstrap p-values, LASAR > "
                             f"baseline, {dataset} ({profile}).", f"tab:pvalues-{dataset}")
                 if style == "latex" else
                 markdown_table(HEADER, prow, f"Table 1 p-values (LASAR > baseline), "
                                f"{dataset} ({profile} profile)"))
        ppath = results.root / "tables" / f"table1_pvalues.{ext}"
        atomic_write_text(ppath, ptext)
        out.append(ppath)
    return out
