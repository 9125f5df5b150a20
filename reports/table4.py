"""Table 4 (inference efficiency): bench/cot.json (`bench cot`: MiniOneRec's plain decoding,
LASAR and Explicit CoT's CoT generation timed on the same test users in the same process or
processes) and the manifests' full test-set ranking times.
"""
from .fmt import write_table


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


def table4_data(results):
    """Rows of Table 4, or None without bench/cot.json."""
    b = results.bench_cot
    if b is None:
        return None
    found = results.methods
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
            man = found[method].manifest
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


def write_table4(results):
    d = table4_data(results)
    if d is None:
        return []
    b, rows = d["bench"], d["rows"]
    ds, prof = results.dataset, results.profile
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
    return write_table(results.root, "table4_efficiency", header, fmt,
                       f"Inference efficiency, {ds} ({prof}).", "Table 4: inference efficiency",
                       notes)
