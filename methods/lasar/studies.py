"""LASAR's ablations and sweeps, each a configuration of the one method (paper Tables 2, 3, 8,
9; Figures 3, 4a, 4b, 5a, 5b). Written as data to results/<ds>/<profile>/lasar/studies.json
for the report generators.

Ablation and sweep rows are evaluated on a fixed-seed subsample of test users
(`studies.eval_users`; all users when null), all on the same users, and every row keeps its
per-user target ranks (`ranks`, in `eval_user_ids` order; 0 = not in the top k) and N (`ns`)
for the reports' paired bootstrap; per-N metrics and the after-RL N distribution use the main row's full
test set. Rows (each a configuration of the method):
  pure_sft                       the Stage-1 model, plain decoding (Table 2/3's first row)
  sft_align_<a>                  Stage 2 with alignment a, no RL (Tables 2, 9)
  sft_align_<main>_detached      the main alignment with the Policy Head reading h_0 detached
  rl_latent_only, rl_terminal_kl RL without terminal KL and REINFORCE; without REINFORCE
  rl_full                        LASAR (= the main row's model; N sampled as the main row)
  adaptive_argmax                the same model, N = the Policy Head's argmax
  force_<n>                      the same model, N forced (Figure 4a)
  rl_lambda_<v>                  RL with step penalty v (Table 7's grid; `lambda_sweep` lists
                                 the values and rows, the configured one being rl_full)
  mixed_x<s>                     Figure 3's single-stage route at Stage 1's rate times s, with
                                 Stage 1's and Stage 2's budget (before RL, like
                                 sft_align_<main>); `figure3` holds both routes' curves

Under `accelerate launch` the studies run in every process: each decoding is shared out by
whole batches (methods/lm/decode.py), the extra trainings (Stage-2 variants, the mixed
variant, the RL ablation) are collective artifacts every process trains (DDP), times are the
group's wall time (dist.clock), and only the main process writes studies.json. The race runs
last and consumes the fit: its three models' weights are released before the race trains a
fourth (release_models).
"""
import json
import logging
from pathlib import Path

import numpy as np

from protocol.dist import clock, is_main_process
from protocol.io import atomic_write_json
from protocol.metrics import summarize, target_ranks
from protocol.progress import progress
from protocol.schema import replace

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


def examples_curve(info):
    """A training stage's validation curve against the training examples it had seen
    ([[examples, loss]]; a stage trained before they were recorded: steps x batch)."""
    curve = info.get("valid_loss_curve") or []
    seen = info.get("valid_examples_seen") or [s * info["effective_batch"] for s, _ in curve]
    return [[int(x), float(v)] for x, (_, v) in zip(seen, curve)]


def study_index(ctx, k):
    """Positions in the test split of the studies' fixed-seed sample of k test users (all when
    k is null or too large)."""
    n = len(ctx.split.test)
    if not k or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(ctx.eval_seed + 2).choice(n, k, replace=False))


def study_users(ctx, k):
    """The studies' fixed-seed sample of k test users (all when k is null or too large)."""
    return ctx.split.test.subset(study_index(ctx, k))


def run_studies(method, ctx, fitted, ranking, out_dir):
    """Every study on the LasarFit `fitted` and the main row's Ranking, in every process of a
    distributed run; the main one writes studies.json to `out_dir` (None in the others).
    -> manifest summary."""
    cfg, st = method.config, method.config.studies
    if not st.enabled:
        return {}
    ks, n_max = ctx.config.eval.ks, cfg.n_max
    test = ctx.split.test
    ex = study_users(ctx, st.eval_users)
    enc = method.prompts(fitted, ex)
    decoder = method.decoder(ctx, fitted)
    rl_on = cfg.rl.enabled
    # lambda only enters REINFORCE's advantage (Eq. 6): no sweep without it
    lambdas = (sorted(set(st.step_penalties) | {cfg.rl.step_penalty})
               if rl_on and cfg.rl.reinforce and st.step_penalties else [])
    out = {"eval_users": int(len(ex)), "all_test_users": int(len(test)),
           "eval_user_ids": [ctx.dataset.user_ids[u] for u in ex.users],
           "n_mode": cfg.inference.n_mode,
           "teacher": {"kind": cfg.teacher.resolved().kind,
                       "item_text_share": fitted.info["pool"].get("item_text_share")},
           "rows": {}}
    # decodings: Pure SFT, the alignments (and the main one if not among them), the detached
    # Stage 2, the RL ablation's two, the two adaptive rows, Force-N, the extra lambdas
    plan = (1 + len(st.alignments) + (cfg.stage2.align not in st.alignments) + st.detached_stage2
            + (2 if st.rl_ablation and rl_on else 0) + 2 + len(st.force_n)
            + max(len(lambdas) - 1, 0))
    bar = progress(total=plan * len(ex), desc="lasar studies", unit="user")

    def ranked(items):
        r = target_ranks(items, ex.targets)
        return {**summarize(r, ks), "ranks": [int(x) for x in r]}

    def evaluate(name, latent, **kw):
        t0 = clock()
        items, ns = decoder.decode(latent, enc, progress=bar, **kw)
        row = {**ranked(items), "seconds": round(clock() - t0, 2),
               "n_dist": n_distribution(ns, n_max), "ns": [int(x) for x in ns]}
        out["rows"][name] = row
        log.info("lasar study %s: NDCG@10 %.4f HR@10 %.4f mean N %.2f", name, row["NDCG@10"],
                 row["HR@10"], row["n_dist"]["mean"])
        return row

    # Pure SFT = the Stage-1 model (MiniOneRec's SFT), plain decoding; also the time baseline
    t0 = clock()
    items = method.plain_decode(ctx, fitted, ex, progress=bar)
    out["rows"]["pure_sft"] = {**ranked(items), "seconds": round(clock() - t0, 2)}

    # Table 2 / 9: alignment ablation after Stage 2 (no RL)
    main_align = cfg.stage2.align
    for a in st.alignments:
        if a == main_align:
            latent = fitted.stage2
        else:
            latent, _, _ = method.stage2(ctx, fitted.base, fitted.tok, fitted.pool, fitted.valid,
                                         replace(cfg.stage2, align=a))
        evaluate(f"sft_align_{a}", latent)
        latent = None       # free a variant before the next trains (0.6B on a 24 GiB CPU)
    sft_row = out["rows"].get(f"sft_align_{main_align}") or evaluate(f"sft_align_{main_align}",
                                                                      fitted.stage2)
    # the main alignment with h_0 detached from L_policy (the default is the joint loss)
    if st.detached_stage2:
        s = replace(cfg.stage2, detach_policy_input=not cfg.stage2.detach_policy_input)
        latent, _, _ = method.stage2(ctx, fitted.base, fitted.tok, fitted.pool, fitted.valid, s)
        evaluate(f"sft_align_{main_align}" + ("_detached" if s.detach_policy_input else "_joint"),
                 latent)
        latent = None

    # Table 3: RL ablation (latent only; + terminal KL; + REINFORCE = LASAR)
    if st.rl_ablation and rl_on:
        variants = {"rl_latent_only": dict(terminal_kl=False, reinforce=False),
                    "rl_terminal_kl": dict(terminal_kl=True, reinforce=False)}
        for name, over in variants.items():
            latent, info = method.rl_phase(ctx, fitted, replace(cfg.rl, **over))
            evaluate(name, latent)
            latent = None
        main_name = "rl_full"
    else:
        main_name = "adaptive"
    full = evaluate(main_name, fitted.model)
    # Section 3.4: the main row samples N; the Policy Head's argmax beside it
    other = "argmax" if cfg.inference.n_mode == "sample" else "sample"
    evaluate(f"adaptive_{other}", fitted.model, n_mode=other)

    # Figure 4a: Force-N on the final model, same users
    for n in st.force_n:
        evaluate(f"force_{n}", fitted.model, force_n=n)

    # the step-penalty sweep (Table 7: lambda in {1e-4, 5e-4, 1e-3}): one RL run per value
    out["lambda_sweep"] = []
    for lam in lambdas:
        name = main_name if lam == cfg.rl.step_penalty else f"rl_lambda_{lam!r}"
        if lam != cfg.rl.step_penalty:                 # the configured one is the main row
            latent, _ = method.rl_phase(ctx, fitted, replace(cfg.rl, step_penalty=lam))
            evaluate(name, latent)
            latent = None
        out["lambda_sweep"].append({"step_penalty": lam, "row": name})
    bar.close()

    # Figure 5b, 4b: per-N metrics and N distributions (main row: all test users)
    ns = np.asarray(ranking.fields["latent_steps"])
    out["per_n_all_users"] = per_n_metrics(ranking.items, test.targets, ns, ks)
    out["n_dist_after_sft"] = sft_row["n_dist"]
    out["n_dist_final_subset"] = full["n_dist"]
    out["n_dist_final_all_users"] = n_distribution(ns, n_max)
    # Table 4 / note: LASAR decode time over plain decode time, same users, same process
    out["time_ratio_vs_plain"] = round(full["seconds"] / out["rows"]["pure_sft"]["seconds"], 3)

    # Figure 3: the equal-budget race of the two routes from the backbone (reports/figure3.py)
    fi = fitted.info
    budget = method.race_budget(fitted)
    start = budget["stage1"]["examples"]
    fig3 = {"stage1": examples_curve(fi["stage1"]),
            "stage2": [[start + x, v] for x, v in examples_curve(fi["stage2"])],
            "stage2_start": start, "two_stage_row": f"sft_align_{main_align}",
            "budget": budget, "mixed": []}
    if st.mixed:
        # the race trains a fourth model from the backbone, and nothing reads the fit's three
        # after it (the runner keeps fit_info only): their weights go first (at Qwen3-0.6B's
        # shape in fp32 they held 7 GB, and the race was OOM-killed at 23.7 GB on a 24 GiB CPU)
        release_models(fitted)
        for scale in cfg.mixed.lr_scales:
            latent, info = method.mixed(ctx, fitted, scale)
            row = f"mixed_x{scale:g}"
            with progress(total=len(ex), desc=f"lasar {row} eval", unit="user") as bar2:
                items, ns_mixed = decoder.decode(latent, enc, progress=bar2)
            out["rows"][row] = {**ranked(items), "n_dist": n_distribution(ns_mixed, n_max),
                                "ns": [int(x) for x in ns_mixed]}
            fig3["mixed"].append({"scale": scale, "lr": info["lr"], "row": row,
                                  "curve": examples_curve(info), "steps": info["steps_run"],
                                  "examples": info.get("examples_run")})
            latent = None
    out["figure3"] = fig3
    out["table8"] = fi["pool"]["table8"]
    if "rl" in fi:
        out["rl_log"] = _read_rl_log(fi["rl"].get("folder"))
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out_dir / "studies.json", out)
    return {"time_ratio_vs_plain": out["time_ratio_vs_plain"],
            "rows": {k: {m: v.get(m) for m in ("NDCG@10", "HR@10")} for k, v in out["rows"].items()}}


def release_models(fitted):
    """Drop the weights of the fit's models (final, Stage 2, Stage 1): their parameters move to
    the meta device. For the last consumer of `fitted` only (run_studies' race)."""
    for model in {id(m): m for m in (fitted.model, fitted.stage2, fitted.base)}.values():
        model.to("meta")            # the race's build then returns the memory (measure.release)


def _read_rl_log(folder):
    if not folder:
        return None
    p = Path(folder) / "rl_log.jsonl"
    if not p.is_file():
        return None
    by_step = {}
    for line in p.read_text().splitlines():
        row = json.loads(line)
        by_step[row["step"]] = row                   # a resumed run's repeats: last wins
    return [by_step[k] for k in sorted(by_step)]
