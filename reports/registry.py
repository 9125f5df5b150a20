"""Every table and figure a run writes, as a registry like the methods' (methods/__init__.py):
one entry each, in the order report.md shows them.

An entry names the file stem (tables/<name>.{md,tex} or figures/<name>.{png,pdf}), the part of
report.md it goes to ("tables", "figures", or "comparison" at the end), its heading there, its
writer, and when it applies. A writer takes the run's RunResults (reports/results.py: the
folder read once) and returns the paths it wrote, [] when the run lacks its data (report.md
then lists it under "Not produced by this run"). An entry that does not apply to a run (Table 2
off Beauty, the lambda sweep of a run without one) is neither written nor listed missing.

Adding a table: a module under reports/ with a writer `write_x(results)`, and one line below.
"""
from dataclasses import dataclass
from typing import Callable

from .baseline_strength import write_baseline_strength
from .claims import write_claims
from .estimates import write_estimates
from .external_tables import write_external_comparison
from .figures import figure
from .lasar_tables import (write_alignment, write_force_n, write_lambda, write_n_distribution,
                           write_per_n, write_rl_ablation, write_table8)
from .latent_tables import write_latent_comparison, write_latentr3_study
from .paper_compare import write_comparison
from .table1 import write_table1, write_table1_pvalues
from .table4 import write_table4
from .table5 import write_table5


def always(results):
    return True


@dataclass(frozen=True)
class Report:
    name: str
    section: str                           # "tables" | "figures" | "comparison"
    heading: str
    write: Callable                        # RunResults -> [paths written]
    applies: Callable = always             # RunResults -> bool


def _beauty(r):
    return r.dataset == "beauty"


def _not_beauty(r):
    return r.dataset != "beauty"


def _has_lambda(r):
    return "lambda_sweep" in r.studies


def _has_latentr3(r):
    return "latentr3" in r.methods


def _has_recbole(r):
    return bool({"sasrec", "gru4rec"} & set(r.methods))


def _has_plan(r):
    return bool(r.plan)


def _has_external(r):
    return bool(r.external)


REPORTS = [
    Report("claims", "tables", "The paper's claims", write_claims),
    Report("table1", "tables", "Table 1: main results", write_table1),
    Report("table1_pvalues", "tables", "Table 1: significance (LASAR > baseline, one-sided "
           "paired bootstrap)", write_table1_pvalues),
    Report("external_comparison", "tables", "External rows against LASAR and the best baseline",
           write_external_comparison, _has_external),
    Report("table2_alignment", "tables", "Table 2: alignment ablation", write_alignment,
           _beauty),
    Report("table9_alignment", "tables", "Table 9: alignment ablation", write_alignment,
           _not_beauty),
    Report("table3_rl_ablation", "tables", "Table 3: RL ablation", write_rl_ablation),
    Report("table4_efficiency", "tables", "Table 4: inference efficiency", write_table4),
    Report("table5_scaling", "tables", "Table 5: model scaling", write_table5),
    Report("baseline_strength", "tables", "Baselines beside their published strength (not in "
           "the paper)", write_baseline_strength, _has_recbole),
    Report("table8_segments", "tables", "Table 8: segment count vs sample complexity",
           write_table8),
    Report("force_n", "tables", "Force-N (Figure 4a's data)", write_force_n),
    Report("n_distribution", "tables", "N distribution (Figure 4b's data)",
           write_n_distribution),
    Report("per_n", "tables", "Per-N metrics (Figure 5b's data)", write_per_n),
    Report("table_lambda", "tables", "Step-penalty (lambda) sweep", write_lambda, _has_lambda),
    Report("latent_comparison", "tables", "Latent reasoning compared: LASAR, LatentR3, Explicit "
           "CoT (not in the paper)", write_latent_comparison, _has_latentr3),
    Report("latentr3_study", "tables", "LatentR3 study: RL on/off, thought count (not in the "
           "paper)", write_latentr3_study, _has_latentr3),
    Report("figure3", "figures", "Figure 3: two-stage vs mixed training, validation loss",
           figure("figure3")),
    Report("figure4a", "figures", "Figure 4a: Force-N vs adaptive N, HR@10", figure("figure4a")),
    Report("figure4b", "figures", "Figure 4b: N distribution after SFT and after RL",
           figure("figure4b")),
    Report("figure5a", "figures", "Figure 5a: RL dynamics, mean N and reward",
           figure("figure5a")),
    Report("figure5b", "figures", "Figure 5b: HR@10 per Policy-Head N", figure("figure5b")),
    Report("figure_lambda", "figures", "Step-penalty (lambda) sweep: HR@10 and mean N",
           figure("figure_lambda"), _has_lambda),
    Report("estimates", "tables", "Estimated vs measured cost per stage (the plan checked)",
           write_estimates, _has_plan),
    Report("paper_comparison", "comparison", "Reproduced vs published numbers",
           write_comparison),
]


def names():
    return [r.name for r in REPORTS]
