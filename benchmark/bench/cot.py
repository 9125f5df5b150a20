"""`python -m benchmark bench cot`: time per test user of Explicit CoT's two inference modes
(CoT generation, direct answer), LASAR and plain decoding (MiniOneRec's: the Stage-1 model, the
same beam search), on the same test users in one process, alternating, repeated (paper Table 4:
CoT generation about 20x LASAR's time), and LatentR3's decoding (its thought in the beam
search's prefix hook) when the plan includes it. Also the accuracy of each on those users. Under
`accelerate launch` every process decodes its share of each decoder's batches (the times are
the group's wall time: dist.clock; `processes` says how many) and the main one writes.

It loads the trained models through the methods' own fit (every artifact is reused from
results/; run `./run_all.sh DATASET --methods lasar,cot_gream` first, or it trains them). The
result is an artifact (`_work/bench-cot-<key>/`, keyed by both methods' result keys and the
settings; collective) published to results/<dataset>/<profile>/bench/cot.json for the reports.
"""
import json
import statistics

import numpy as np

from protocol.artifact import Artifact
from protocol.dist import clock, is_main_process, world_size
from protocol.io import atomic_write_json
from protocol.metrics import summarize, target_ranks
from . import bench_users, fitted

MODES = ("plain", "lasar", "cot_direct", "cot_generation")


def bench_cot(plan, users, repeats, refresh=False):
    """Measure (or reuse the finished measurement of) Table 4's timing, publish it to
    bench/cot.json; in every process of a distributed run (the main one writes).
    -> (result dict, True when measured now)."""
    keys = {"lasar": plan.key("lasar"), "cot_gream": plan.key("cot_gream")}
    if "latentr3" in plan.methods:
        keys["latentr3"] = plan.key("latentr3")
    art = Artifact(plan.results_dir / "_work", "bench-cot",
                   {**keys, "users": users, "repeats": repeats}, resumable=True, collective=True)
    fresh = refresh or not art.done

    def build(folder):
        res = {"key": art.key, **measure(plan, users, repeats)}
        if is_main_process():
            atomic_write_json(folder / "cot.json", res)
        return {"seconds": sum(sum(v) for v in res["seconds"].values())}

    res = art.get(build, lambda path, info: json.loads((path / "cot.json").read_text()),
                  refresh=refresh)
    if is_main_process():
        atomic_write_json(plan.results_dir / "bench" / "cot.json", res)
    return res, fresh


def measure(plan, users, repeats):
    """The timing itself: every decoder on the same users, alternating, `repeats` times."""
    import torch
    lasar, lctx, lfit = fitted(plan, "lasar")
    cot, cctx, cfit = fitted(plan, "cot_gream")
    r3 = fitted(plan, "latentr3") if "latentr3" in plan.methods else None
    modes = MODES + (("latentr3",) if r3 else ())
    ex = bench_users(lctx.split.test, users)
    enc, decoder = lasar.prompts(lfit, ex), lasar.decoder(lctx, lfit)

    def run_all(e, enc_):
        """One pass of every decoder, in the methods' precision (bf16 autocast on a GPU when
        the profile asks); -> {mode: (seconds, output)}."""
        with lasar.precision(lctx):
            return _run_all(e, enc_)

    def _run_all(e, enc_):
        out = {}
        t0 = clock()
        out["plain"] = lasar.plain_decode(lctx, lfit, e)
        t1 = clock()
        out["lasar"] = decoder.decode(lfit.model, enc_)
        t2 = clock()
        out["cot_direct"] = cot.rank(cctx, cfit, e).items
        t3 = clock()
        out["cot_generation"] = cot.decode_cot(cctx, cfit, e)
        t4 = clock()
        secs = [t1 - t0, t2 - t1, t3 - t2, t4 - t3]
        if r3:
            out["latentr3"] = r3[0].rank(r3[1], r3[2], e).items
            secs.append(clock() - t4)
        return out, dict(zip(modes, secs))

    w = ex.subset(np.arange(min(16, len(ex))))   # warm-up: trie, tables, first allocations
    run_all(w, lasar.prompts(lfit, w))
    times = {k: [] for k in modes}
    for _ in range(repeats):
        out, secs = run_all(ex, enc)
        for k, v in secs.items():
            times[k].append(v)
    (lat, ns), (gen, lengths, _) = out["lasar"], out["cot_generation"]
    items = {"plain": out["plain"], "lasar": lat, "cot_direct": out["cot_direct"],
             "cot_generation": gen, **({"latentr3": out["latentr3"]} if r3 else {})}
    n, ks = len(ex), plan.settings.eval.ks
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"dataset": plan.request.dataset, "profile": plan.profile, "users": n,
            "repeats": repeats, "device": lctx.device, "threads": torch.get_num_threads(),
            "processes": world_size(),
            "mean_latent_steps": float(np.mean(ns)),
            "mean_reasoning_tokens": float(np.mean(lengths)),
            "cot_max_new_tokens": cot.config.cot_generation.max_new_tokens,
            "ms_per_user": {k: round(1000 * v / n, 3) for k, v in med.items()},
            "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
            "cot_generation_over_lasar": round(med["cot_generation"] / med["lasar"], 3),
            "lasar_over_plain": round(med["lasar"] / med["plain"], 3),
            "cot_generation_over_direct": round(med["cot_generation"] / med["cot_direct"], 3),
            **({"latentr3_over_plain": round(med["latentr3"] / med["plain"], 3),
                "lasar_over_latentr3": round(med["lasar"] / med["latentr3"], 3)} if r3 else {}),
            "metrics": {k: summarize(target_ranks(v, ex.targets), ks) for k, v in items.items()},
            "test_user_ids": [plan.dataset.user_ids[u] for u in ex.users]}
