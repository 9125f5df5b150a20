"""The paper's claims across datasets: each claim judged on the dataset(s) the paper makes it on,
and reported on the others. Reads results/<ds>/<profile>/tables/claims.json of every dataset
under one results root and writes results/claims-<profile>.{md,json}. Reads results/ only.
"""
import json
from pathlib import Path

from protocol.io import atomic_write_json, atomic_write_text

DATASETS = ("sports", "beauty", "instruments")
# where the paper makes each claim (claims.py ids): Tables 1, 2/9 and 4 cover all three;
# Table 3 is on Beauty (and Figure 5a's RL dynamics on Sports); Figure 4a on Sports; Figure 3
# names no dataset.
PAPER_DATASETS = {"best": DATASETS, "kl_only": DATASETS, "reinforce": ("beauty", "sports"),
                  "adaptive": ("sports",), "two_stage": (), "cot_20x": DATASETS,
                  "lasar_overhead": DATASETS}


def gather(results_root, profile):
    """{dataset: [claim records]} of every dataset with claims under `results_root`."""
    out = {}
    root = Path(results_root)
    for ds_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        p = ds_dir / profile / "tables" / "claims.json"
        if p.is_file():
            out[ds_dir.name] = json.loads(p.read_text())
    return out


def write_cross_dataset_claims(results_root, profile):
    """results/claims-<profile>.{md,json}; [] when fewer than one dataset has claims."""
    by_ds = gather(results_root, profile)
    if not by_ds:
        return []
    names = [d for d in DATASETS if d in by_ds] + sorted(d for d in by_ds if d not in DATASETS)
    claims, verdicts = {}, {}
    for ds in names:
        for c in by_ds[ds]:
            claims.setdefault(c["id"], c["claim"].replace(f" on {ds.capitalize()}", ""))
            verdicts.setdefault(c["id"], {})[ds] = c["verdict"]
    lines = [f"**The paper's claims across datasets ({profile} profile)**", "",
             "★ marks the dataset(s) the paper makes the claim on; the other cells report the same "
             "rule there. Each cell is that dataset's verdict (tables/claims.md there: the 95% "
             "intervals and the rule).", "",
             "| Claim | " + " | ".join(d.capitalize() for d in names) + " |",
             "|---|" + ":---:|" * len(names)]
    for cid, text in claims.items():
        home = PAPER_DATASETS.get(cid, ())
        cells = [("★ " if d in home else "") + verdicts[cid].get(d, "–") for d in names]
        lines.append(f"| {text} | " + " | ".join(cells) + " |")
    if any(not PAPER_DATASETS.get(c) for c in claims):
        lines += ["", "A claim without ★ names no dataset in the paper (Figure 3)."]
    root = Path(results_root)
    p1, p2 = root / f"claims-{profile}.md", root / f"claims-{profile}.json"
    atomic_write_text(p1, "\n".join(lines) + "\n")
    atomic_write_json(p2, {"profile": profile, "datasets": names,
                           "paper_datasets": {k: list(v) for k, v in PAPER_DATASETS.items()},
                           "verdicts": verdicts})
    return [p1, p2]
