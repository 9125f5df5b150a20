"""Every report of one run folder (results/<dataset>/<profile>/), from results/ only: the
folder read once (reports/results.py), every table and figure of the registry
(reports/registry.py) written from it, and report.md, which embeds them all so a reader can
look instead of parse."""
import json

from protocol.io import atomic_write_text

from .registry import REPORTS
from .study_data import NO_ITEM_TEXT, no_item_text
from .table1 import row_order


def write_reports(results, report_md=True):
    """Every table and figure that applies to `results` (a RunResults: load_results(root,
    eval settings)) and, with report_md, report.md. -> the paths written."""
    paths = [p for r in REPORTS if r.applies(results) for p in r.write(results)]
    if report_md and (results.methods or results.external):
        paths.append(write_report_md(results))
    return paths


def _provenance(results):
    found = results.rows()
    lines = ["| Method | config | git commit | seed | test users | fit | rank | finished |",
             "|---|---|---|---|---|---|---|---|"]
    for m in row_order(found):
        man = found[m].manifest
        if man.get("kind") == "external":
            f = man.get("predictions_file") or {}
            lines.append(f"| {man.get('display_name', m)} (external) | sha256 "
                         f"`{str(f.get('sha256'))[:12]}` | `{str(man.get('git_commit'))[:10]}` "
                         f"| – | {man['dataset']['test_users']} | – | – | "
                         f"{man.get('created', '')} |")
            continue
        t = man.get("timings", {})
        lines.append(f"| {man.get('display_name', m)} | `{man['config_hash']}` | "
                     f"`{str(man.get('git_commit'))[:10]}` | {man['seed']} | "
                     f"{man['dataset']['test_users']} | {t.get('fit_s', 0) / 60:.1f} min | "
                     f"{t.get('rank_s', 0):.0f} s | {man.get('created', '')} |")
    log = results.root / "run_log.jsonl"
    if log.is_file():
        runs = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
        total = sum(r["wall_s"] for r in runs)
        seeds = next((r["seeds"] for r in runs if r.get("seeds")), None)
        if seeds:
            lines += ["", f"These invocations trained {len(seeds)} seeds "
                          f"({', '.join(map(str, seeds))}) in one queue: each wall time below "
                          "covers all of them."]
        lines += ["", f"Wall time of `./run_all.sh` on this folder: {total / 3600:.2f} h over "
                      f"{len(runs)} invocation(s), one line each in run_log.jsonl (a run killed "
                      "by SIGKILL leaves none): "
                  + ", ".join(f"{r['started']} {r['wall_s'] / 60:.1f} min"
                              + ("" if r.get("completed", True) else " (not completed)")
                              for r in runs) + "."]
    lines += ["", "fit = the last invocation's training time (a resumed method only counts the "
                  "part it ran then)."]
    return "\n".join(lines)


def write_report_md(results):
    root, ds, prof = results.root, results.dataset, results.profile
    rewrite = (f"./run_all.sh {ds} --profile {root.parent.name} --seeds <the run's seeds> "
               "--only-reports" if prof != root.name else
               f"python -m benchmark tables {ds} --profile {prof}")
    out = [f"# LASAR reproduction: {ds}, {prof} profile", "",
           f"Generated from this folder only (`{rewrite}` rewrites it). Every number below "
           "comes from the files next "
           "to it: `<method>/metrics.json`, `lasar/studies.json`, `bench/cot.json`, "
           "`_scaling/`. Paper values: `reports/paper_numbers.yaml`.", "",
           "## What produced it", "", _provenance(results), ""]
    st = results.studies
    if no_item_text(st):
        kind = (st.get("teacher") or {}).get("kind", "?")
        out += [f"**Caveat:** LASAR's {NO_ITEM_TEXT} (teacher {kind}, item-text share 0). Its "
                "alignment rows and the alignment claim test alignment to item-blind chains.",
                ""]
    expected = [r for r in REPORTS if r.applies(results)]
    missing = []
    for r in (r for r in expected if r.section == "tables"):
        p = root / "tables" / f"{r.name}.md"
        if p.is_file():
            body = p.read_text().strip()
            if body.startswith("**"):          # drop the file's own bold title line
                body = body.split("\n", 1)[1].strip()
            out += [f"## {r.heading}", "", body, ""]
        else:
            missing.append(r.heading)
    out += ["## Figures", ""]
    for r in (r for r in expected if r.section == "figures"):
        if (root / "figures" / f"{r.name}.png").is_file():
            out += [f"**{r.heading}** ([PDF](figures/{r.name}.pdf))", "",
                    f"![{r.heading}](figures/{r.name}.png)", ""]
        else:
            missing.append(r.heading)
    for r in (r for r in expected if r.section == "comparison"):
        p = root / "tables" / f"{r.name}.md"
        if p.is_file():
            body = p.read_text().strip().split("\n", 1)[1].strip()
            out += [f"## {r.heading}", "", body, ""]
    if missing:
        out += ["## Not produced by this run", "",
                "These need results this folder does not have (a method or study not run, or a "
                "profile that disables it):", ""] + [f"- {m}" for m in missing] + [""]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(out))
    return path
