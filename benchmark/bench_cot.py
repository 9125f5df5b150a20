"""`python -m benchmark bench cot`: time per test user of Explicit CoT's two inference modes
(CoT generation, direct answer), LASAR and plain decoding (MiniOneRec's: the Stage-1 model, the
same beam search), on the same test users in one process, alternating, repeated (paper Table 4:
CoT generation about 20x LASAR's time). Also the accuracy of each on those users.

It loads the trained models through the methods' own fit (every artifact is reused from
results/; run `./run_all.sh DATASET --methods lasar,cot_gream` first, or it trains them). The
result is also written to results/<dataset>/<profile>/bench/cot.json for the reports.
"""
import json
import statistics
import time

import numpy as np


def add_arguments(p):
    p.add_argument("dataset")
    p.add_argument("--users", type=int, default=500, help="test users (fixed seed)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", help="results root (default: results/)")
    p.add_argument("--json", action="store_true", help="one JSON object")


def bench_key(plan, users, repeats):
    """What produced a bench/cot.json: the two methods' result keys and the bench settings."""
    from .config import config_hash
    return config_hash([plan.key("lasar"), plan.key("cot_gream"), users, repeats])


def run(args):
    import torch

    import methods
    from methods.lasar.latent import START
    from methods.lasar.objective import latent_task
    from methods.lasar.studies import _plain_decode

    from .io import atomic_write_json
    from .metrics import summarize, target_ranks
    from .runner import Plan
    plan = Plan(args.dataset, args.profile, ["lasar", "cot_gream"], args.data_dir, args.out,
                args.overrides)
    shared = plan.cfg.shared
    if shared["threads"]:
        torch.set_num_threads(shared["threads"])
    lctx, cctx = plan.context("lasar"), plan.context("cot_gream")
    lasar = methods.get("lasar")(plan.method_cfgs["lasar"])
    lasar.fit(lctx)
    cot = methods.get("cot_gream")(plan.method_cfgs["cot_gream"])
    cot.fit(cctx)
    test = lctx.split.test
    idx = np.sort(np.random.default_rng(0).choice(len(test), min(args.users, len(test)), False))
    ex = test.subset(idx)
    enc = latent_task(lasar.codec, ex, lasar.tok.convert_tokens_to_ids(START), with_answers=False)

    class Null:
        def update(self, n):
            pass

    # warm-up on a few users (trie and SID tables built, first-call allocations), not timed
    w = ex.subset(np.arange(min(16, len(ex))))
    _plain_decode(lasar, lasar._state["base"], w, lctx.device, Null())
    lasar.decode(lasar.model, latent_task(lasar.codec, w, lasar.tok.convert_tokens_to_ids(START),
                                          with_answers=False), lctx.device)
    cot.rank(cctx, w)
    cot.decode_cot(cctx, w)
    times = {"plain": [], "lasar": [], "cot_direct": [], "cot_generation": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plain = _plain_decode(lasar, lasar._state["base"], ex, lctx.device, Null())
        t1 = time.perf_counter()
        lat, ns = lasar.decode(lasar.model, enc, lctx.device)
        t2 = time.perf_counter()
        direct = cot.rank(cctx, ex)
        t3 = time.perf_counter()
        gen, lengths, _ = cot.decode_cot(cctx, ex)
        t4 = time.perf_counter()
        for k, a, b in (("plain", t0, t1), ("lasar", t1, t2), ("cot_direct", t2, t3),
                        ("cot_generation", t3, t4)):
            times[k].append(b - a)
    ks = shared["eval"]["ks"]
    n = len(ex)
    med = {k: statistics.median(v) for k, v in times.items()}
    res = {"key": bench_key(plan, args.users, args.repeats),
           "dataset": args.dataset, "profile": plan.profile, "users": n,
           "repeats": args.repeats, "device": lctx.device, "threads": torch.get_num_threads(),
           "mean_latent_steps": float(np.mean(ns)),
           "mean_reasoning_tokens": float(np.mean(lengths)),
           "cot_max_new_tokens": cot.config["cot_generation"]["max_new_tokens"],
           "ms_per_user": {k: round(1000 * v / n, 3) for k, v in med.items()},
           "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
           "cot_generation_over_lasar": round(med["cot_generation"] / med["lasar"], 3),
           "lasar_over_plain": round(med["lasar"] / med["plain"], 3),
           "cot_generation_over_direct": round(med["cot_generation"] / med["cot_direct"], 3),
           "metrics": {k: summarize(target_ranks(v, ex.targets), ks) for k, v in
                       (("plain", plain), ("lasar", lat), ("cot_direct", direct),
                        ("cot_generation", gen))},
           "test_user_ids": [plan.dataset.user_ids[u] for u in ex.users]}
    out = plan.results_dir / "bench" / "cot.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out, res)
    return res
