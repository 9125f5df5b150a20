"""Table 4 (inference efficiency) and Table 5 (model scaling), from results/ only.

Table 4 reads bench/cot.json (`bench cot`: MiniOneRec's plain decoding, LASAR and Explicit CoT's
CoT generation timed on the same test users in the same process or processes) and the
manifests' full test-set ranking times. Table 5 reads the main run's rows and the
larger-backbone rows under _scaling/<label>/ (run by ./run_all.sh when the profile enables
`scaling`).
"""
import json
from pathlib import Path

from protocol.stats import paired_difference

from .fmt import cell, rank_marks, write_table
from .results_io import dataset_profile, load_manifest, load_metrics, load_per_user, method_dirs
from .table1 import DISPLAY, DISPLAY_MD


def _duration(seconds):
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


def _processes(bench):
    """Where `bench cot` ran: one process, or the batches shared out among several (a
    bench/cot.json from before `processes` was recorded was measured in one)."""
    n = bench.get("processes", 1)
    return "in one process" if n == 1 else f"each decoder's batches shared out among {n} processes"


def table4_data(root):
    """Rows of Table 4, or None without bench/cot.json."""
    root = Path(root)
    path = root / "bench" / "cot.json"
    if not path.is_file():
        return None
    b = json.loads(path.read_text())
    found = method_dirs(root)
    n_test = None
    rows = []
    for key, method, label in (("plain", "minionerec", "MiniOneRec"), ("lasar", "lasar", "LASAR"),
                               ("cot_generation", "cot_gream", "Explicit CoT (CoT Gen.)"),
                               ("latentr3", "latentr3", "LatentR3")):
        if key not in b["ms_per_user"]:          # LatentR3: only when the run had it
            continue
        ms = b["ms_per_user"][key]
        total, measured = None, False
        if method in found and key != "cot_generation":
            man = load_manifest(found[method])
            total, measured = man["timings"]["rank_s"], True
            n_test = man["dataset"]["test_users"]
        rows.append({"key": key, "method": method, "label": label, "ms_per_sample": ms,
                     "ratio_to_minionerec": ms / b["ms_per_user"]["plain"],
                     "total_s": total, "total_measured": measured,
                     "NDCG@10": b["metrics"][key]["NDCG@10"], "HR@10": b["metrics"][key]["HR@10"]})
    if n_test:
        for r in rows:
            if r["total_s"] is None:
                r["total_s"] = r["ms_per_sample"] * n_test / 1000
    return {"bench": b, "rows": rows, "test_users": n_test}


def write_table4(root):
    root = Path(root)
    d = table4_data(root)
    if d is None:
        return []
    b, rows = d["bench"], d["rows"]
    ds, prof = dataset_profile(root)
    header = ["Method", "Time/Sample (ms)", "vs MiniOneRec", "Total Time", "N@10", "HR@10"]

    def fmt(style):
        out = []
        for r in rows:
            lab = (r"Explicit CoT$_{\mathrm{GREAM}}$ (CoT Gen.)" if style == "latex"
                   and r["key"] == "cot_generation" else r["label"])
            tot = "–" if r["total_s"] is None else (_duration(r["total_s"])
                                                     + ("" if r["total_measured"] else "†"))
            out.append([lab, f"{r['ms_per_sample']:.2f}", f"{r['ratio_to_minionerec']:.2f}x", tot,
                        f"{r['NDCG@10']:.4f}", f"{r['HR@10']:.4f}"])
        return out
    notes = [f"{ds}, {prof} profile. Time/Sample: `bench cot` on {b['users']} fixed test users, "
             f"beam width 50, the decoders alternating, {_processes(b)} ({b['device']}, "
             f"{b['threads']} thread(s) a process, median of {b['repeats']} repeat(s)); N@10 "
             "and HR@10 on those users. MiniOneRec's time is plain decoding by its SFT model (RL does not "
             "change decoding).",
             f"Total Time: the measured ranking time of all {d['test_users']} test users from the "
             "method's run; † = Time/Sample x test users (CoT generation is not run on every "
             "test user).",
             f"CoT generation wrote {b['mean_reasoning_tokens']:.0f} reasoning tokens on average "
             f"(cap {b['cot_max_new_tokens']}); LASAR took {b['mean_latent_steps']:.2f} latent "
             f"steps on average. CoT generation / LASAR = {b['cot_generation_over_lasar']:.1f}x."]
    return write_table(root, "table4_efficiency", header, fmt, f"Inference efficiency, {ds} ({prof}).",
                  "Table 4: inference efficiency", notes)


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


def table5_data(root):
    """{'scales': [(label, backbone text, {method: metrics})], 'label': ...} or None."""
    root = Path(root)
    base = method_dirs(root)
    scaled_root = root / "_scaling"
    if not scaled_root.is_dir():
        return None
    scales = []
    for sub in [root] + sorted(p for p in scaled_root.iterdir() if p.is_dir()):
        found = method_dirs(sub) if sub != root else base
        rows = {m: load_metrics(found[m]) for m in SCALING if m in found}
        if not rows:
            continue
        ref = "minionerec" if "minionerec" in found else next(iter(rows))
        scales.append((sub.name if sub != root else "profile", _backbone(load_manifest(found[ref])),
                       rows, {m: found[m] for m in rows}))
    return {"scales": scales} if len(scales) > 1 else None


def scaling_differences(scales, eval_cfg=None):
    """[(backbone text, method, {metric: paired_difference summary})]: each larger backbone's
    row minus the profile backbone's, N@10 and HR@10 paired over the same test users (the
    paper reads Table 5 as "a larger backbone helps"; a difference needs its interval). A
    method without predictions.jsonl on both sides is left out."""
    boot = ((eval_cfg.bootstrap_resamples, eval_cfg.bootstrap_seed) if eval_cfg is not None
            else (10000, 2026))
    base_dirs = scales[0][3]
    out = []
    for _, bb, _, dirs in scales[1:]:
        for m in SCALING:
            if m not in dirs or m not in base_dirs or not all(
                    (Path(d) / "predictions.jsonl").is_file() for d in (dirs[m], base_dirs[m])):
                continue
            ub, b = load_per_user(base_dirs[m], (10,))
            ua, a = load_per_user(dirs[m], (10,))
            if ua != ub:
                raise ValueError(f"{dirs[m]}: test users differ from {base_dirs[m]}'s; rerun "
                                 "both backbones on the same split")
            out.append((bb, m, paired_difference({k: (a[k], b[k]) for k in ("NDCG@10", "HR@10")},
                                                 *boot)))
    return out


def write_table5(root, eval_cfg=None):
    root = Path(root)
    d = table5_data(root)
    if d is None:
        return []
    scales = d["scales"]
    ds, prof = dataset_profile(root)
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
    diffs = scaling_differences(scales, eval_cfg)
    if diffs:
        notes.append(f"Larger minus {scales[0][1]} backbone, paired over the same test users "
                     "(mean difference, 95% bootstrap interval): " + "; ".join(
                         f"{DISPLAY_MD[m]} on {bb}: " + ", ".join(
                             f"{k.replace('NDCG', 'N')} {v['diff']:+.4f} "
                             f"[{v['lo']:+.4f}, {v['hi']:+.4f}]" for k, v in d.items())
                         for bb, m, d in diffs) + ".")
    return write_table(root, "table5_scaling", header, fmt, f"Model scaling, {ds} ({prof}).",
                  "Table 5: model scaling", notes)
