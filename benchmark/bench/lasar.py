"""`python -m benchmark bench lasar`: LASAR's decoding time against plain decoding (what
MiniOneRec does: the same backbone, the same beam search, no latent loop), on the same test
users in the same process, alternating, repeated (paper Table 4 reports 1.07-1.16x), and
LatentR3's decoding when the plan includes it (`python -m benchmark bench lasar` does). Under
`accelerate launch` every process decodes its share of the batches and the times are the
group's wall time (dist.clock; `processes` says how many).

It loads the trained models through LASAR's own fit (every artifact is reused from results/;
run `./run_all.sh DATASET --methods lasar` first, or it trains them).
"""
import statistics

import numpy as np

from protocol.dist import clock, world_size
from . import bench_users, fitted


def bench_lasar(plan, users, repeats):
    """-> {users, repeats, ms per user of each, LASAR / plain, ...}."""
    import torch
    lasar, ctx, fit = fitted(plan, "lasar")
    r3 = fitted(plan, "latentr3") if "latentr3" in plan.methods else None
    ex = bench_users(ctx.split.test, users)
    enc, decoder = lasar.prompts(fit, ex), lasar.decoder(ctx, fit)
    plain, latent, thought = [], [], []
    with lasar.precision(ctx):                # the methods' precision (bf16 on a GPU if asked)
        for _ in range(repeats):
            t0 = clock()
            lasar.plain_decode(ctx, fit, ex)
            plain.append(clock() - t0)
            t0 = clock()
            _, ns = decoder.decode(fit.model, enc)
            latent.append(clock() - t0)
            if r3:
                t0 = clock()
                r3[0].rank(r3[1], r3[2], ex)
                thought.append(clock() - t0)
    p, lt = statistics.median(plain), statistics.median(latent)
    extra = {}
    if r3:
        t3 = statistics.median(thought)
        extra = {"latentr3_ms_per_user": round(1000 * t3 / len(ex), 3),
                 "latentr3_over_plain": round(t3 / p, 3),
                 "latentr3_seconds": [round(x, 2) for x in thought]}
    return {**extra, "users": len(ex), "repeats": repeats, "device": ctx.device,
            "threads": torch.get_num_threads(), "processes": world_size(),
            "mean_latent_steps": float(np.mean(ns)),
            "plain_ms_per_user": round(1000 * p / len(ex), 3),
            "lasar_ms_per_user": round(1000 * lt / len(ex), 3),
            "lasar_over_plain": round(lt / p, 3),
            "plain_seconds": [round(x, 2) for x in plain],
            "lasar_seconds": [round(x, 2) for x in latent]}
