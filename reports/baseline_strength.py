"""The classic baselines beside their published strength (tables/baseline_strength.{md,tex}):
our SASRec and GRU4Rec rows (Table 1's setting), the run's sensitivity rows (settings
`sensitivity`: the same methods under other settings, e.g. a history of 50; never Table 1),
and the published cross-entropy SASRec numbers on the same files (published_baselines.yaml
beside this file, each with its source). A row below BELOW of the strongest published value
on a metric is flagged: a reader can then tell a weak baseline from a strong method. The
published numbers are on every user; a run on a sample of users (the cpu profile) says so and
is not compared.
"""
from functools import lru_cache
from pathlib import Path

import yaml

from .fmt import write_table

MODELS = {"sasrec": "SASRec", "gru4rec": "GRU4Rec"}
METRICS = ("NDCG@10", "HR@10")
BELOW = 0.9                    # flag a row under 90% of the strongest published value


@lru_cache(maxsize=None)
def published():
    with open(Path(__file__).with_name("published_baselines.yaml")) as f:
        return yaml.safe_load(f)


def _row(label, setting, res, strongest, full):
    m, fit = res.metrics, res.manifest.get("fit_info") or {}
    ratios = [(m[k] / strongest[k]) if full and strongest.get(k) else None for k in METRICS]
    flag = ("–" if not full or all(r is None for r in ratios) else
            "below 90%" if any(r is not None and r < BELOW for r in ratios) else "no")
    epochs = (f"{fit['best_epoch']} / {fit['epochs_run']}" +
              (" (stopped)" if fit.get("stopped_early") else " (cap)")
              if "best_epoch" in fit else "–")
    return [label, setting, f"{m['NDCG@10']:.4f}", f"{m['HR@10']:.4f}", epochs,
            *("–" if r is None else f"{r:.2f}" for r in ratios), flag]


def baseline_rows(results):
    """The table's rows (ours, the sensitivity rows, the published ones), and whether the
    run covers every user (only then are the ratios computed)."""
    ds = results.dataset
    found = {m: r for m, r in results.methods.items() if m in MODELS}
    if not found:
        return [], False
    res = next(iter(found.values()))
    full = res.manifest["dataset"]["test_users"] == res.manifest["dataset"]["users"]
    history = res.manifest["config"]["shared"]["history_len"]
    rows = []
    for m, r in found.items():
        strongest = _strongest(m, ds)
        rows.append(_row(f"{MODELS[m]} (ours, Table 1)", f"history {history}", r, strongest,
                         full))
        for label, runs in results.sensitivity.items():
            if m in runs:
                rows.append(_row(f"{MODELS[m]} (ours, sensitivity)", _setting(runs[m], label),
                                 runs[m], strongest, full))
    for m in found:
        for p in published().get(m, {}).get(ds, []):
            rows.append([f"{MODELS[m]} (published)", f"history {p['history']}: {p['source']} "
                         f"<{p['url']}>", f"{p['NDCG@10']:.4f}", f"{p['HR@10']:.4f}", "–", "–",
                         "–", "–"])
    return rows, full


def _strongest(model, ds):
    """The highest published value of each metric for `model` on `ds` ({} when none)."""
    entries = published().get(model, {}).get(ds, [])
    return {k: max(e[k] for e in entries) for k in METRICS} if entries else {}


def _setting(res, label):
    """A sensitivity row's setting: its label and the --set pairs of its variant (recorded in
    its manifest's resolved settings)."""
    shared = res.manifest["config"]["shared"]
    pairs = ((shared.get("sensitivity") or {}).get("variants") or {}).get(label, [])
    return f"{label}: {' '.join(pairs)}" if pairs else label


def write_baseline_strength(results):
    rows, full = baseline_rows(results)
    if not rows:
        return []
    ds, prof = results.dataset, results.profile
    n = next(r.metrics["n_users"] for m, r in results.methods.items() if m in MODELS)
    notes = [f"{ds}, {prof} profile, {n} test users; leave-one-out, every item ranked. "
             "Ours: RecBole 1.2.1's models with their default settings, CE loss, on the "
             "protocol's history of 20 items (Table 1); sensitivity rows change one setting "
             "and are never in Table 1. Epochs: the best validation epoch / epochs trained "
             "(stopped early, or at the cap)."]
    if full:
        notes.append(f"Ratios: ours / the strongest published value of that metric; flagged "
                     f"'below 90%' when under {BELOW:.0%} of it.")
    else:
        notes.append("This run ranks a sample of the users: the published numbers are on "
                      "every user, so no ratio is computed (the cpu-full profile's rows are "
                      "the comparable ones).")
    header = ["Row", "Setting", "N@10", "HR@10", "Epochs (best / run)", "N@10 / published",
              "HR@10 / published", "Flag"]
    return write_table(results.root, "baseline_strength", header,
                       lambda style: rows if style == "md" else
                       [[c.replace("_", r"\_").replace("#", r"\#") for c in r] for r in rows],
                       f"Baselines beside their published strength, {ds} ({prof}).",
                       "Baselines beside their published strength", notes)
