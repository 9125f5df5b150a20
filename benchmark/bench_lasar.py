"""`python -m benchmark bench lasar`: LASAR's decoding time against plain decoding (what
MiniOneRec does: the same backbone, the same beam search, no latent loop), on the same test
users in the same process, alternating, repeated (paper Table 4 reports 1.07-1.16x).

It loads the trained models through LASAR's own fit (every artifact is reused from results/;
run `./run_all.sh DATASET --methods lasar` first, or it trains them).
"""
import statistics
import time

import numpy as np


def add_arguments(p):
    p.add_argument("dataset")
    p.add_argument("--users", type=int, default=2000, help="test users (fixed seed)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="results root (default: results/)")
    p.add_argument("--json", action="store_true", help="one JSON object")


def run(args):
    import torch

    import methods
    from methods.lasar.latent import START
    from methods.lasar.objective import latent_task
    from methods.lasar.studies import _plain_decode

    from .runner import Plan
    plan = Plan(args.dataset, args.profile, ["lasar"], args.data_dir, args.out, args.overrides)
    shared = plan.cfg.shared
    if shared["threads"]:
        torch.set_num_threads(shared["threads"])
    ctx = plan.context("lasar")
    m = methods.get("lasar")(plan.method_cfgs["lasar"])
    m.fit(ctx)
    test = ctx.split.test
    idx = np.sort(np.random.default_rng(0).choice(len(test), min(args.users, len(test)), False))
    ex = test.subset(idx)
    enc = latent_task(m.codec, ex, m.tok.convert_tokens_to_ids(START), with_answers=False)

    class Null:
        def update(self, n):
            pass

    plain, latent = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        _plain_decode(m, m._state["base"], ex, ctx.device, Null())
        plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _, ns = m.decode(m.model, enc, ctx.device)
        latent.append(time.perf_counter() - t0)
    p, lt = statistics.median(plain), statistics.median(latent)
    return {"users": len(ex), "repeats": args.repeats, "device": ctx.device,
            "threads": torch.get_num_threads(), "mean_latent_steps": float(np.mean(ns)),
            "plain_ms_per_user": round(1000 * p / len(ex), 3),
            "lasar_ms_per_user": round(1000 * lt / len(ex), 3),
            "lasar_over_plain": round(lt / p, 3),
            "plain_seconds": [round(x, 2) for x in plain],
            "lasar_seconds": [round(x, 2) for x in latent]}
