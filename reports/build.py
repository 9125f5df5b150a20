"""Every report of one run folder (results/<dataset>/<profile>/), from results/ only:
tables/*.{tex,md}, figures/*.{png,pdf}, the paper comparison, the claims, and report.md, which
embeds them all so a reader can look instead of parse."""
import json
from pathlib import Path

from protocol.io import atomic_write_text

from .claims import write_claims
from .figure_data import load_studies
from .figures import write_figures
from .external_tables import write_external_comparison
from .lasar_tables import write_lasar_tables
from .latent_tables import write_latent_comparison, write_latentr3_study
from .paper_compare import write_comparison
from .results_io import dataset_profile, external_dirs, load_manifest, method_dirs
from .study_data import NO_ITEM_TEXT, no_item_text
from .table1 import PAPER_ORDER, write_table1
from .tables_extra import write_table4, write_table5

# (file stem under tables/, heading) in the order report.md shows them
SECTIONS = [
    ("claims", "The paper's claims"),
    ("table1", "Table 1: main results"),
    ("table1_pvalues", "Table 1: significance (LASAR > baseline, one-sided paired bootstrap)"),
    ("external_comparison", "External rows against LASAR and the best baseline"),
    ("table2_alignment", "Table 2: alignment ablation"),
    ("table9_alignment", "Table 9: alignment ablation"),
    ("table3_rl_ablation", "Table 3: RL ablation"),
    ("table4_efficiency", "Table 4: inference efficiency"),
    ("table5_scaling", "Table 5: model scaling"),
    ("table8_segments", "Table 8: segment count vs sample complexity"),
    ("force_n", "Force-N (Figure 4a's data)"),
    ("n_distribution", "N distribution (Figure 4b's data)"),
    ("per_n", "Per-N metrics (Figure 5b's data)"),
    ("table_lambda", "Step-penalty (lambda) sweep"),
    ("latent_comparison", "Latent reasoning compared: LASAR, LatentR3, Explicit CoT (not in the "
                          "paper)"),
    ("latentr3_study", "LatentR3 study: RL on/off, thought count (not in the paper)"),
]
FIGURES = [
    ("figure3", "Figure 3: two-stage vs mixed training, validation loss"),
    ("figure4a", "Figure 4a: Force-N vs adaptive N, HR@10"),
    ("figure4b", "Figure 4b: N distribution after SFT and after RL"),
    ("figure5a", "Figure 5a: RL dynamics, mean N and reward"),
    ("figure5b", "Figure 5b: HR@10 per Policy-Head N"),
    ("figure_lambda", "Step-penalty (lambda) sweep: HR@10 and mean N"),
]
# reported missing only when studies.json has a "lambda_sweep" (a profile may not run one)
LAMBDA = {"table_lambda", "figure_lambda"}
# reported missing only when the run has LatentR3 (a method beyond the paper's seven)
LATENTR3 = {"latent_comparison", "latentr3_study"}


def write_reports(root, eval_cfg, report_md=True):
    """Every table, figure, the comparison, the claims and (report_md) report.md of a run.
    eval_cfg: the run's EvalConfig (metric cut-offs, bootstrap settings)."""
    root = Path(root)
    paths = write_table1(root, eval_cfg)
    paths += write_external_comparison(root, eval_cfg)
    paths += write_lasar_tables(root)
    paths += write_table4(root)
    paths += write_table5(root, eval_cfg)
    paths += write_latent_comparison(root, eval_cfg)
    paths += write_latentr3_study(root, eval_cfg)
    paths += write_figures(root)
    paths += write_comparison(root)
    paths += write_claims(root, eval_cfg)
    if report_md and (method_dirs(root) or external_dirs(root)):
        paths.append(write_report_md(root))
    return paths


def _provenance(root):
    found = method_dirs(root)
    lines = ["| Method | config | git commit | seed | test users | fit | rank | finished |",
             "|---|---|---|---|---|---|---|---|"]
    found.update({f"external/{n}": p for n, p in external_dirs(root).items()})
    for m in [m for m in PAPER_ORDER if m in found] + sorted(set(found) - set(PAPER_ORDER)):
        man = load_manifest(found[m])
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
    log = root / "run_log.jsonl"
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


def write_report_md(root):
    root = Path(root)
    ds, prof = dataset_profile(root)
    rewrite = (f"./run_all.sh {ds} --profile {root.parent.name} --seeds <the run's seeds> "
               "--only-reports" if prof != root.name else
               f"python -m benchmark tables {ds} --profile {prof}")
    out = [f"# LASAR reproduction: {ds}, {prof} profile", "",
           f"Generated from this folder only (`{rewrite}` rewrites it). Every number below "
           "comes from the files next "
           "to it: `<method>/metrics.json`, `lasar/studies.json`, `bench/cot.json`, "
           "`_scaling/`. Paper values: `reports/paper_numbers.yaml`.", "",
           "## What produced it", "", _provenance(root), ""]
    st = load_studies(root)
    if no_item_text(st):
        kind = (st.get("teacher") or {}).get("kind", "?")
        out += [f"**Caveat:** LASAR's {NO_ITEM_TEXT} (teacher {kind}, item-text share 0). Its "
                "alignment rows and the alignment claim test alignment to item-blind chains.",
                ""]
    optional = (set() if "lambda_sweep" in st else LAMBDA) | \
        (set() if "latentr3" in method_dirs(root) else LATENTR3) | \
        (set() if external_dirs(root) else {"external_comparison"})
    missing = []
    for stem, title in SECTIONS:
        p = root / "tables" / f"{stem}.md"
        if p.is_file():
            body = p.read_text().strip()
            if body.startswith("**"):          # drop the file's own bold title line
                body = body.split("\n", 1)[1].strip()
            out += [f"## {title}", "", body, ""]
        elif not (stem == "table2_alignment" and ds != "beauty"
                  or stem == "table9_alignment" and ds == "beauty" or stem in optional):
            missing.append(title)
    out += ["## Figures", ""]
    for stem, title in FIGURES:
        if (root / "figures" / f"{stem}.png").is_file():
            out += [f"**{title}** ([PDF](figures/{stem}.pdf))", "",
                    f"![{title}](figures/{stem}.png)", ""]
        elif stem not in optional:
            missing.append(title)
    p = root / "tables" / "paper_comparison.md"
    if p.is_file():
        body = p.read_text().strip().split("\n", 1)[1].strip()
        out += ["## Reproduced vs published numbers", "", body, ""]
    if missing:
        out += ["## Not produced by this run", "",
                "These need results this folder does not have (a method or study not run, or a "
                "profile that disables it):", ""] + [f"- {m}" for m in missing] + [""]
    path = root / "report.md"
    atomic_write_text(path, "\n".join(out))
    return path
