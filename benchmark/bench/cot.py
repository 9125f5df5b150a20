"""`python -m benchmark bench cot`: time per test user of Explicit CoT's two inference modes
(CoT generation, direct answer), LASAR and plain decoding (MiniOneRec's: the Stage-1 model, the
same beam search), on the same test users, alternating (paper Table 4: CoT generation about
20x LASAR's time), and LatentR3's decoding (its thought in the beam search's prefix hook) when
the plan includes it. Also the accuracy of each on those users.

Each of the `repeats` timed passes runs in a fresh process (`python -m benchmark.bench.cot
REQUEST_JSON USERS OUT`: every decoder once, after a warm-up), so the spread of the passes
holds what moves between invocations (memory layout, caches, the machine's load), not only
between the decoders' turns within one; the claims judge Table 4 on those passes
(reports/claims.py). Under `accelerate launch` no process spawns children: every process
decodes its share of each decoder's batches for all passes in itself (the times are the
group's wall time: dist.clock; `processes` says how many; `fresh_processes` is false) and the
main one writes.

It loads the trained models through the methods' own fit (every artifact is reused from
results/; run `./run_all.sh DATASET --methods lasar,cot_gream` first, or it trains them). The
result is an artifact (`_work/bench-cot-<key>/`, keyed by both methods' result keys and the
settings; collective) published to results/<dataset>/<profile>/bench/cot.json for the reports.
"""
import json
import statistics
import subprocess
import sys

import numpy as np

from protocol.artifact import Artifact
from protocol.dist import clock, distributed, is_main_process, world_size
from protocol.errors import BenchmarkError
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
        res = {"key": art.key, **measure_passes(plan, users, repeats, folder)}
        if is_main_process():
            atomic_write_json(folder / "cot.json", res)
        return {"seconds": sum(sum(v) for v in res["seconds"].values())}

    res = art.get(build, lambda path, info: json.loads((path / "cot.json").read_text()),
                  refresh=refresh)
    if is_main_process():
        atomic_write_json(plan.results_dir / "bench" / "cot.json", res)
    return res, fresh


def measure_passes(plan, users, repeats, folder):
    """`repeats` timed passes, each in a fresh process writing folder/pass-<i>.json (a pass
    already written is kept: a killed bench resumes), combined; in this process under
    `accelerate launch` (no children there)."""
    if distributed():
        return {**measure(plan, users, repeats), "fresh_processes": False}
    passes = []
    for i in range(repeats):
        out = folder / f"pass-{i}.json"
        if not out.is_file():
            argv = [sys.executable, "-m", "benchmark.bench.cot", plan.request.to_json(),
                    ",".join(plan.methods), str(users), str(out)]
            if subprocess.run(argv).returncode != 0:
                raise BenchmarkError(f"bench cot: timed pass {i} (a process of its own) failed; "
                                     "its output is above")
        passes.append(json.loads(out.read_text()))
    res = dict(passes[0])
    res["seconds"] = {k: [p["seconds"][k][0] for p in passes] for k in res["seconds"]}
    med = {k: statistics.median(v) for k, v in res["seconds"].items()}
    res.update(ratios(med, res["users"]), repeats=repeats, fresh_processes=True,
               outputs_equal=all(p["metrics"] == passes[0]["metrics"] for p in passes))
    return res


def ratios(med, n):
    """ms per user of each decoder and the ratios Table 4 reports, from median seconds."""
    return {"ms_per_user": {k: round(1000 * v / n, 3) for k, v in med.items()},
            "cot_generation_over_lasar": round(med["cot_generation"] / med["lasar"], 3),
            "lasar_over_plain": round(med["lasar"] / med["plain"], 3),
            "cot_generation_over_direct": round(med["cot_generation"] / med["cot_direct"], 3),
            **({"latentr3_over_plain": round(med["latentr3"] / med["plain"], 3),
                "lasar_over_latentr3": round(med["lasar"] / med["latentr3"], 3)}
               if "latentr3" in med else {})}


def measure(plan, users, repeats):
    """The timing itself: every decoder on the same users, alternating, `repeats` times, in
    this process (or this launch's processes)."""
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
            "processes": world_size(), "fresh_processes": False,
            "mean_latent_steps": float(np.mean(ns)),
            "mean_reasoning_tokens": float(np.mean(lengths)),
            "cot_max_new_tokens": cot.config.cot_generation.max_new_tokens,
            "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
            **ratios(med, n),
            "metrics": {k: summarize(target_ranks(v, ex.targets), ks) for k, v in items.items()},
            "test_user_ids": [plan.dataset.user_ids[u] for u in ex.users]}


def timed_pass(argv):
    """One timed pass in this fresh process (measure_passes starts it): REQUEST_JSON (the
    run's RunRequest), the methods, the users, the JSON file to write."""
    from ..cli import setup_logging
    from ..plan import Plan, RunRequest
    request, names, users, out = argv
    setup_logging()
    plan = Plan(RunRequest.from_json(request), names.split(","))
    atomic_write_json(out, measure(plan, int(users), 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(timed_pass(sys.argv[1:]))
