"""LatentR3's own study: RL on or off, and the number of thought tokens, on the studies' fixed
test users (LASAR's rule, methods/lasar/studies.py `study_users`, so the two methods' study rows
share their users). Written to results/<ds>/<profile>/latentr3/studies.json:

  rows[name]      metrics, ms_per_user and `ranks` (1-based rank of each study user's target in
                  the row's top-k, 0 when absent, in `eval_user_ids` order)
  main            the configured model (= Table 1's model on these users)
  sft_only        the same model before RL (RL off)
  thoughts_<t>    SFT + RL (as configured) with t thought tokens, for each t of
                  `studies.thoughts` other than the configured count; t = 0 is the control:
                  the same SFT (start model, data, steps) with no thought, and no RL
  thoughts_<t>_sft  that variant before RL

Under `accelerate launch` every process runs it (decodings shared out, trainings collective);
only the main process writes.
"""
import logging

import numpy as np

from protocol.dist import clock, is_main_process
from protocol.io import atomic_write_json
from protocol.metrics import summarize, target_ranks
from protocol.progress import progress

from ..lasar.studies import study_index

log = logging.getLogger(__name__)


def run_studies(method, ctx, fitted, ranking, out_dir):
    c, st = method.config, method.config.studies
    if not st.enabled:
        return {}
    ks = ctx.config.eval.ks
    idx = study_index(ctx, st.eval_users)
    ex = ctx.split.test.subset(idx)
    enc = fitted.codec.seqrec(ex, with_answers=False)
    rows, info = {}, {}
    plan = [("main", None)]
    if c.rl.enabled and st.rl_ablation:
        plan.append(("sft_only", None))
    others = sorted(set(st.thoughts) - {c.n_thoughts})
    for t in others:
        plan.append((f"thoughts_{t}", t))
        if c.rl.enabled and st.rl_ablation and t > 0:
            plan.append((f"thoughts_{t}_sft", t))
    variants = {}
    with progress(total=len(plan) * len(ex), unit="user", desc="latentr3 studies") as bar:
        for i, (name, t) in enumerate(plan):
            if name == "main":
                model = fitted.model
            elif name == "sft_only":
                model = fitted.sft
            else:
                if t not in variants:
                    variants[t] = method.variant(ctx, fitted, t)
                    info[f"thoughts_{t}"] = variants[t][2]
                model = variants[t][1] if name.endswith("_sft") else variants[t][0]
            t0 = clock()
            items = method.decode(ctx, fitted, model, enc, progress=bar)
            ms = 1000 * (clock() - t0) / len(ex)
            ranks = target_ranks(items, ex.targets)
            if name == "main":
                main_items = items
            rows[name] = {**summarize(ranks, ks), "ms_per_user": round(ms, 3),
                          "thoughts": c.n_thoughts if t is None else t,
                          "rl": c.rl.enabled and t != 0 and not name.endswith(("_sft",
                                                                              "sft_only")),
                          "ranks": ranks.tolist()}
            log.info("latentr3 studies: %s N@10 %.4f HR@10 %.4f", name, rows[name]["NDCG@10"],
                     rows[name]["HR@10"])
            if t is not None and (i + 1 == len(plan) or plan[i + 1][1] != t):
                model = None              # its rows are done: free the variant's models before
                variants.pop(t, None)     # the next one trains (the rehearsal's OOM at 0.6B)
    # the main row on these users is Table 1's ranking of them
    rows["main"]["equals_main_run"] = bool(np.array_equal(main_items, ranking.items[idx]))
    out = {"eval_users": int(len(ex)), "all_test_users": int(len(ctx.split.test)),
           "eval_user_ids": [ctx.dataset.user_ids[u] for u in ex.users],
           "n_thoughts": c.n_thoughts, "rl_enabled": c.rl.enabled, "rows": rows,
           "trainings": info}
    if is_main_process():
        atomic_write_json(out_dir / "studies.json", out, indent=1)
    return {k: {m: v for m, v in r.items() if m != "ranks"} for k, r in rows.items()}
