"""LASAR's ablations and sweeps, each a configuration of the one method (paper Tables 2, 3, 8,
9; Figures 3, 4a, 4b, 5a, 5b). Written as data to results/<ds>/<profile>/lasar/studies.json
for the report generators.

Ablation and sweep rows are evaluated on a fixed-seed subsample of test users
(`studies.eval_users`; all users when null), all on the same users; per-N metrics and the
after-RL N distribution use the main row's full test set.
"""
import json
import logging
import time

import numpy as np

from benchmark.beam import recommend
from benchmark.io import atomic_write_json
from benchmark.metrics import summarize, target_ranks
from benchmark.progress import progress

from ..lm.forward import collate
from .latent import START
from .objective import latent_task

log = logging.getLogger(__name__)


def n_distribution(ns, n_max):
    ns = np.asarray(ns)
    return {"counts": [int((ns == k).sum()) for k in range(1, n_max + 1)],
            "mean": float(ns.mean()) if len(ns) else None}


def per_n_metrics(topk, targets, ns, ks):
    out = {}
    ranks = target_ranks(topk, targets)
    for k in np.unique(ns):
        m = ns == k
        out[int(k)] = summarize(ranks[m], ks)
    return out


def _plain_decode(method, model, examples, dev, bar):
    """Stage-1 (MiniOneRec SFT) model, plain trie-constrained beam search: 'Pure SFT'."""
    import torch
    enc = method.codec.seqrec(examples, with_answers=False)
    order = np.argsort([len(s) for s in enc.suffixes], kind="stable")
    out = np.empty((len(examples), method.topk), dtype=np.int64)
    model = model.to(dev).eval()
    bs = method.config["eval_batch"]
    with torch.no_grad():
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            b = collate(enc, idx, method.tok.pad_token_id, with_answers=False).to(dev)
            out[idx] = recommend(model, b.ids, b.mask, method.trie, method.sid_ids,
                                 width=method.topk, k=method.topk, head=b.head).items.cpu().numpy()
            bar.update(len(idx))
    return out


def run_studies(method, ctx, topk, out_dir):
    cfg, st = method.config, method.config["studies"]
    if not st["enabled"]:
        return {}
    s = method._state
    ks, n_max, dev = ctx.config["eval"]["ks"], cfg["n_max"], ctx.device
    test = ctx.split.test
    k = st["eval_users"]
    idx = np.arange(len(test)) if not k or k >= len(test) else \
        np.sort(np.random.default_rng(ctx.seed + 2).choice(len(test), k, replace=False))
    ex = test.subset(idx)
    enc = latent_task(method.codec, ex, method.tok.convert_tokens_to_ids(START),
                      with_answers=False)
    out = {"eval_users": int(len(ex)), "all_test_users": int(len(test)),
           "eval_user_ids": [ctx.dataset.user_ids[u] for u in ex.users], "rows": {}}
    plan = (1 + len(st["alignments"]) + (3 if st["rl_ablation"] else 0) + len(st["force_n"]))
    bar = progress(total=plan * len(ex), desc="lasar studies", unit="user")

    def evaluate(name, latent, **kw):
        t0 = time.perf_counter()
        items, ns = method.decode(latent, enc, dev, progress=bar, **kw)
        row = {**summarize(target_ranks(items, ex.targets), ks),
               "seconds": round(time.perf_counter() - t0, 2),
               "n_dist": n_distribution(ns, n_max)}
        out["rows"][name] = row
        log.info("lasar study %s: NDCG@10 %.4f HR@10 %.4f mean N %.2f", name, row["NDCG@10"],
                 row["HR@10"], row["n_dist"]["mean"])
        return row

    # Pure SFT = the Stage-1 model (MiniOneRec's SFT), plain decoding; also the time baseline
    t0 = time.perf_counter()
    items = _plain_decode(method, s["base"], ex, dev, bar)
    out["rows"]["pure_sft"] = {**summarize(target_ranks(items, ex.targets), ks),
                               "seconds": round(time.perf_counter() - t0, 2)}

    # Table 2 / 9: alignment ablation after Stage 2 (no RL)
    main_align = cfg["stage2"]["align"]
    for a in st["alignments"]:
        if a == main_align:
            latent = method.sft_model
        else:
            latent, _, _ = method.stage2(ctx, s["base"], method.tok, s["pool"], s["valid"],
                                         s["s1_key"], align=a)
        evaluate(f"sft_align_{a}", latent)
    sft_row = out["rows"].get(f"sft_align_{main_align}") or evaluate(f"sft_align_{main_align}",
                                                                      method.sft_model)

    # Table 3: RL ablation (latent only; + terminal KL; + REINFORCE = LASAR)
    if st["rl_ablation"] and cfg["rl"]["enabled"]:
        variants = {"rl_latent_only": dict(terminal_kl=False, reinforce=False),
                    "rl_terminal_kl": dict(terminal_kl=True, reinforce=False)}
        for name, over in variants.items():
            latent, info = method.rl_phase(ctx, method.sft_model, method.tok, method.codec,
                                           s["pool"], s["s2_key"], **over)
            evaluate(name, latent)
        full = evaluate("rl_full", method.model)
    else:
        full = evaluate("adaptive", method.model)

    # Figure 4a: Force-N on the final model, same users
    for n in st["force_n"]:
        evaluate(f"force_{n}", method.model, force_n=n)
    bar.close()

    # Figure 5b, 4b: per-N metrics and N distributions (main row: all test users)
    ns = np.asarray(method.rank_n)
    out["per_n_all_users"] = per_n_metrics(topk, test.targets, ns, ks)
    out["n_dist_after_sft"] = sft_row["n_dist"]
    out["n_dist_final_subset"] = full["n_dist"]
    out["n_dist_final_all_users"] = n_distribution(ns, n_max)
    # Table 4 / note: LASAR decode time over plain decode time, same users, same process
    out["time_ratio_vs_plain"] = round(full["seconds"] / out["rows"]["pure_sft"]["seconds"], 3)

    # Figure 3: two-stage (Stage 1 then Stage 2) vs mixed validation loss
    fi = method.fit_info
    fig3 = {"stage1": fi["stage1"].get("valid_loss_curve"),
            "stage1_steps_per_epoch": fi["stage1"].get("steps_per_epoch"),
            "stage2": fi["stage2"].get("valid_loss_curve"),
            "stage2_steps_per_epoch": fi["stage2"].get("steps_per_epoch")}
    if st["mixed"]:
        latent, info = method.mixed(ctx, method.tok, method.codec, s["pool"], s["valid"],
                                    s["s1_key"])
        fig3.update(mixed=info.get("valid_loss_curve"),
                    mixed_steps_per_epoch=info.get("steps_per_epoch"))
        with progress(total=len(ex), desc="lasar mixed eval", unit="user") as bar2:
            items, ns_mixed = method.decode(latent, enc, dev, progress=bar2)
        out["rows"]["mixed"] = {**summarize(target_ranks(items, ex.targets), ks),
                                "n_dist": n_distribution(ns_mixed, n_max)}
    out["figure3"] = fig3
    out["table8"] = fi["pool"]["table8"]
    if "rl" in fi:
        out["rl_log"] = _read_rl_log(fi["rl"].get("folder"))
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "studies.json", out)
    return {"time_ratio_vs_plain": out["time_ratio_vs_plain"],
            "rows": {k: {m: v.get(m) for m in ("NDCG@10", "HR@10")} for k, v in out["rows"].items()}}


def _read_rl_log(folder):
    if not folder:
        return None
    from pathlib import Path
    p = Path(folder) / "rl_log.jsonl"
    if not p.is_file():
        return None
    by_step = {}
    for line in p.read_text().splitlines():
        row = json.loads(line)
        by_step[row["step"]] = row                   # a resumed run's repeats: last wins
    return [by_step[k] for k in sorted(by_step)]
