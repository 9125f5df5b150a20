"""Each method's stages for the plan (benchmark/estimate.py), read from its configuration the
way its fit and studies run them: the stages' sizes are the methods' own settings applied to
the plan's split."""
from dataclasses import replace

import methods as registry

LATENT_POSITIONS = 6          # <s>, ~4 latent steps (Table 8's mean label), <e>
STAGE1 = "stage 1 SFT"
STUDY = "study: "


def at(stage, where):
    """`stage` with where its run records what it cost (Stage.measured_at)."""
    stage.measured_at = where
    return stage


def _stage1(est, status, m="minionerec"):
    """MiniOneRec's SFT: LASAR's, Explicit CoT's and LatentR3's Stage 1 (one artifact, listed
    once: under MiniOneRec when it runs, else under the first method that needs it)."""
    plan = est.plan
    c = plan.method_cfgs["minionerec"]
    n_items = plan.dataset.n_items
    align = min(c.max_align_items or n_items, n_items)
    sizes = [len(plan.split.train) if t in ("seqrec", "fusion") else align for t in c.tasks]
    if status != "cached":
        ctx = plan.context("minionerec")
        done = plan.method("minionerec").sft_artifact(ctx).done
        status = "cached" if done else status
    if "minionerec" in plan.methods:
        m, where = "minionerec", "fit_info.sft"
    else:
        where = "fit_info.stage1"
    return at(est.sft(m, STAGE1, status, c.sft, c.tasks, sizes), where)


def _together(a, b, name):
    """One stage that does what stages `a` and `b` do (examples, tokens, time), in the larger
    of their memories."""
    big = max((a, b), key=lambda st: st.memory["total"])
    seconds = None if a.seconds is None or b.seconds is None else a.seconds + b.seconds
    return replace(b, name=name, examples=a.examples + b.examples, tokens=a.tokens + b.tokens,
                   seconds=seconds, memory=big.memory, micro_batch=big.micro_batch,
                   fits=big.fits, measured_at=None)


def _minionerec(est, m, status):
    c = est.plan.method_cfgs[m]
    out = [_stage1(est, status)]
    if c.rl.enabled:
        out.append(at(est.rl(m, "GRPO", status, c.rl, len(est.plan.split.train)),
                      "fit_info.rl"))
    return out + [_rank(est, m, status, c)]


def _rank(est, m, status, c):
    return at(est.decode(m, "rank", status, len(est.plan.split.test), c.eval_batch),
              "timings.rank_s")


def _lcrec(est, m, status):
    plan, c = est.plan, est.plan.method_cfgs[m]
    n_items = plan.dataset.n_items
    align = min(c.max_align_items or n_items, n_items)
    sizes = [len(plan.split.train) if t in ("seqrec", "fusion") else align for t in c.tasks]
    return [at(est.sft(m, "SFT", status, c.sft, c.tasks, sizes), "fit_info.sft"),
            _rank(est, m, status, c)]


def _pool(c, plan):
    return min(c.pool_examples or len(plan.split.train), len(plan.split.train))


def _lasar(est, m, status):
    plan, c = est.plan, est.plan.method_cfgs[m]
    pool, test = _pool(c, plan), len(plan.split.test)
    st = c.studies
    users = min(st.eval_users or test, test)
    stage2 = lambda name: est.sft(m, name, status, c.stage2, ["seqrec"], [pool],  # noqa: E731
                                  extra_positions=LATENT_POSITIONS)
    out = [_stage1(est, status, m), _pool_stage(m, status, pool),
           at(stage2("stage 2"), "fit_info.stage2")]
    if c.rl.enabled:
        out.append(at(est.rl(m, "RL", status, c.rl, pool, LATENT_POSITIONS), "fit_info.rl"))
    out.append(_rank(est, m, status, c))
    if not st.enabled:
        return out
    variants = len(set(st.alignments) - {c.stage2.align}) + st.detached_stage2
    for i in range(variants):
        out.append(stage2(f"study: stage 2 variant {i + 1}"))
    lambdas = len(set(st.step_penalties) - {c.rl.step_penalty}) if c.rl.reinforce else 0
    for i in range((2 * st.rl_ablation + lambdas) if c.rl.enabled else 0):
        out.append(est.rl(m, f"study: RL variant {i + 1}", status, c.rl, pool,
                          LATENT_POSITIONS))
    if st.mixed:
        for scale in c.mixed.lr_scales:
            # the equal-budget race (LASAR.race_budget): Stage 1's and Stage 2's examples and
            # optimizer steps together, in one stage
            name = f"study: mixed route x{scale:g}"
            out.append(_together(_stage1(est, status, m), stage2(name), name))
    decodes = (1 + len(st.alignments) + st.detached_stage2 + 2 * (st.rl_ablation and
               c.rl.enabled) + 2 + len(st.force_n) + lambdas + len(c.mixed.lr_scales) * st.mixed)
    out.append(est.decode(m, "study: decodings", status, users * decodes, c.eval_batch))
    return out


def _pool_stage(m, status, pool):
    """The CoT pool's teacher CoTs, their segments (MiniLM over the CoTs' sentences) and the
    Stage-1 model's anchors: not estimated, listed so that the total says it leaves them out
    and the report shows what they took (1:49 at the rehearsal's shape on the CPU)."""
    from .estimate import Stage
    return at(Stage(m, "CoT pool: CoTs, segments, anchors", status, examples=pool,
                    why="not estimated"), "fit_info.pool")


def _cot(est, m, status):
    plan, c = est.plan, est.plan.method_cfgs[m]
    pool, test = _pool(c, plan), len(plan.split.test)
    tasks = ["seqrec", "seqrec"] if c.direct_task else ["seqrec"]
    out = [_stage1(est, status, m),
           at(est.sft(m, "CoT SFT", status, c.sft, tasks, [pool] * len(tasks),
                      extra_tokens=c.max_cot_tokens // len(tasks)), "fit_info.cot_sft"),
           _rank(est, m, status, c)]
    if c.studies.enabled:
        users = min(c.studies.eval_users or test, test)
        # greedy reasoning: up to max_new_tokens single-token steps before the beam search
        out.append(est.decode(m, "study: CoT generation", status, users, c.cot_generation.batch,
                              per_prompt=1 + c.cot_generation.max_new_tokens / 20))
    return out


def _latentr3(est, m, status):
    plan, c = est.plan, est.plan.method_cfgs[m]
    test = len(plan.split.test)
    out = [_stage1(est, status, m) if c.init == "stage1" else None,
           at(est.sft(m, "thought SFT", status, c.sft, ["seqrec"], [len(plan.split.train)],
                      extra_positions=c.n_thoughts), "fit_info.sft")]
    if c.rl.enabled:
        out.append(at(est.rl(m, "thought RL", status, c.rl, len(plan.split.train),
                             c.n_thoughts),
                      "fit_info.rl"))
    out.append(_rank(est, m, status, c))
    if c.studies.enabled:
        others = len(set(c.studies.thoughts) - {c.n_thoughts})
        for i in range(others):
            out.append(est.sft(m, f"study: thought variant {i + 1}", status, c.sft, ["seqrec"],
                               [len(plan.split.train)], extra_positions=2))
        users = min(c.studies.eval_users or test, test)
        out.append(est.decode(m, "study: decodings", status,
                              users * (2 + 2 * others), c.eval_batch))
    return [st for st in out if st is not None]


def _discriminative(est, m, status):
    """A RecBole-style trainer (its config has a train_batch_size); another method: its stage
    without an estimate."""
    c = est.plan.method_cfgs[m]
    if not hasattr(c, "train_batch_size"):
        from .estimate import Stage
        return [at(Stage(m, "train", status, why="no estimate for this method"), "timings.fit_s")]
    return [at(est.recbole(m, status, c), "timings.fit_s")]


BUILDERS = {"minionerec": _minionerec, "lcrec": _lcrec, "lasar": _lasar, "cot_gream": _cot,
            "latentr3": _latentr3}


def method_stages(est, m, status, why):
    """The stages of method `m` (a registered method without a builder here: one line saying
    so, its kind's defaults)."""
    kind = registry.spec(m).kind
    build = BUILDERS.get(m) or (_discriminative if kind == "discriminative" else None)
    if build is None:
        from .estimate import Stage
        return [Stage(m, "all", status, why="no estimate for this method")]
    out = build(est, m, status)
    for st in out:
        if st.name.startswith(STUDY):
            st.measured_at = "timings.studies_s"        # the studies are timed together
        if st.status == status and not st.why:
            st.why = why
    return out
