"""Table 5 (model scaling): the main run's rows and the larger-backbone rows under
_scaling/<label>/ (run by ./run_all.sh when the profile enables `scaling`), each larger
backbone's difference with its paired-bootstrap interval.
"""
from pathlib import Path

from protocol.stats import paired_difference

from .fmt import cell, rank_marks, write_table
from .table1 import DISPLAY, DISPLAY_MD


SCALING = ("lasar", "minionerec", "cot_gream")


def _backbone(man):
    lm = man["config"]["shared"]["lm"]
    params = (man.get("fit_info") or {}).get("parameters")
    if lm["backbone"] == "random":
        size = f"{params / 1e6:.2f}M" if params else f"hidden {lm['hidden_size']}"
        name = f"random Qwen3 {size}"
    else:
        name = Path(str(lm["backbone"])).name
    return name + (" LoRA" if lm["lora"] else " full FT")


def table5_data(results):
    """{'scales': [(label, backbone text, {method: metrics}, {method: MethodResults})]}: the
    profile's backbone first, then each larger one; None without a larger one."""
    if not results.scaling:
        return None
    scales = []
    for label, found in [("profile", results.methods), *results.scaling.items()]:
        rows = {m: found[m].metrics for m in SCALING if m in found}
        if not rows:
            continue
        ref = "minionerec" if "minionerec" in found else next(iter(rows))
        scales.append((label, _backbone(found[ref].manifest), rows,
                       {m: found[m] for m in rows}))
    return {"scales": scales} if len(scales) > 1 else None


def scaling_differences(scales, boot):
    """[(backbone text, method, {metric: paired_difference summary})]: each larger backbone's
    row minus the profile backbone's, N@10 and HR@10 paired over the same test users (the
    paper reads Table 5 as "a larger backbone helps"; a difference needs its interval). A
    method without predictions.jsonl on both sides is left out. boot: (resamples, seed)."""
    base_rows = scales[0][3]
    out = []
    for _, bb, _, rows in scales[1:]:
        for m in SCALING:
            if m not in rows or m not in base_rows or not (rows[m].has_predictions
                                                           and base_rows[m].has_predictions):
                continue
            ub, b = base_rows[m].per_user((10,))
            ua, a = rows[m].per_user((10,))
            if ua != ub:
                raise ValueError(f"{rows[m].folder}: test users differ from "
                                 f"{base_rows[m].folder}'s; rerun both backbones on the same "
                                 "split")
            out.append((bb, m, paired_difference({k: (a[k], b[k]) for k in ("NDCG@10", "HR@10")},
                                                 *boot)))
    return out


def write_table5(results):
    d = table5_data(results)
    if d is None:
        return []
    scales = d["scales"]
    ds, prof = results.dataset, results.profile
    header = ["Method"] + [f"{bb} {m}" for _, bb, _, _ in scales for m in ("N@10", "HR@10")]

    def fmt(style):
        disp = DISPLAY if style == "latex" else DISPLAY_MD
        marks = {(i, k): rank_marks([rows.get(m, {}).get(k) for m in SCALING])
                 for i, (_, _, rows, _) in enumerate(scales) for k in ("NDCG@10", "HR@10")}
        out = []
        for j, m in enumerate(SCALING):
            line = [disp[m]]
            for i, (_, _, rows, _) in enumerate(scales):
                for k in ("NDCG@10", "HR@10"):
                    line.append(cell(rows.get(m, {}).get(k), marks[(i, k)][j], style))
            out.append(line)
        return out
    n = sorted({r["n_users"] for _, _, rows, _ in scales for r in rows.values()})
    notes = [f"{ds}, {prof} profile, {', '.join(map(str, n))} test users; each method trained "
             "with its full recipe (SFT + RL where it has RL) on each backbone. A randomly "
             "initialised backbone is fully fine-tuned (a frozen random base would be "
             "meaningless); a pretrained larger backbone (the paper's Qwen3-1.7B) uses LoRA."]
    diffs = scaling_differences(scales, results.boot)
    if diffs:
        notes.append(f"Larger minus {scales[0][1]} backbone, paired over the same test users "
                     "(mean difference, 95% bootstrap interval): " + "; ".join(
                         f"{DISPLAY_MD[m]} on {bb}: " + ", ".join(
                             f"{k.replace('NDCG', 'N')} {v['diff']:+.4f} "
                             f"[{v['lo']:+.4f}, {v['hi']:+.4f}]" for k, v in d.items())
                         for bb, m, d in diffs) + ".")
    return write_table(results.root, "table5_scaling", header, fmt,
                       f"Model scaling, {ds} ({prof}).", "Table 5: model scaling", notes)
