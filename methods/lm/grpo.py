"""GRPO over trie-constrained beam-search rollouts (paper Eq. 5, Appendix E.5; PROTOCOL 5).

Per prompt, G distinct candidates come from the constrained beam search (width G, rank
ordered). Reward r = r_rule + r_NDCG (Eq. 9, 10); advantage = (r - mean) / (std + 1e-4) within
the group; loss = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + beta KL(pi || pi_ref) per answer
token (k3 estimator), averaged over a candidate's tokens, then over candidates.

One optimizer step (`GRPOLoop.step`) is written once. A method changes what it needs through
hooks: `rollout` (how candidates are drawn: LASAR samples N and runs its latent loop),
`rollout_sums` (per-prompt statistics of a rollout, summed), `after_rollout` (LASAR's first
reward baseline), `terms` (the named loss terms of a micro-batch: LASAR adds terminal KL and
REINFORCE to the GRPO terms), `after_step` (LASAR's reward baseline) and `log_step` (each
step's logs, appended to rl_log.jsonl). A checkpoint holds the model, optimizer, scheduler,
torch's random state (LoRA dropout) and the hook `state` (LASAR's baseline), so a killed run
resumes to what an uninterrupted one computes (tests/test_resume.py, tests/test_lm_train.py).

Across processes (`accelerate launch --num_processes N`): every process runs the loop in step.
The prompt order is a function of (seed, epoch), so each optimizer step's global batch is the
same everywhere; process p takes its contiguous part of it (`dist.my_rows`: parts as equal as
possible), rolls it out and computes its loss terms over micro-batches, each weighted by its
prompts / the *global* batch's prompts. A prompt's G candidates, rewards and advantages (the
group statistics) all live in the process that owns the prompt, so they are what one process
computes. A process's loss is thus its share of the global batch's loss, and the gradients
summed over processes (`dist.all_reduce_grads`, before clipping) are the gradient one process
accumulates over all the micro-batches; every process clips them and takes the same optimizer
step, so the weights stay equal. Step statistics (reward, hit, each term) are summed over
processes (`dist.sum_over_processes`) into global means, the same on every process; LASAR's
reward baseline is updated from them, and its sampled N does not depend on the split (rl.py).
Only the main process writes checkpoints (the others wait), rl_log.jsonl and TensorBoard; a
resumed run loads the same `last/` everywhere. The curves agree with one process up to float
rounding (smaller, differently padded batches) and LoRA dropout, whose masks each process draws
from its own random state (with dropout the runs agree in distribution only).
tests/test_distributed_rl.py compares per-step logs and validation curves of 1 and 2 processes.

Why not TRL's GRPOTrainer: its rollouts sample from `generate` (or vLLM), with no seam for a
beam-search group of *distinct* catalog items, and LASAR's RL adds a latent loop and two loss
terms; overriding rollout and loss would replace most of it.
"""
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from protocol import dist
from protocol.artifact import RESUME_CHECKPOINT as LAST
from protocol.io import replace_dir
from protocol.beam import recommend
from protocol.metrics import summarize, target_ranks
from protocol.progress import progress

from .backbone import autocast
from .decode import Catalog, beam_rank
from .forward import collate, run_rows
from .sft import after_checkpoint, load_best, own_rng, resume, save_checkpoint, save_model

log = logging.getLogger(__name__)


def rule_ndcg_reward(items, targets):
    """Eq. 9 + Eq. 10. items (B, G) rank-ordered candidates, targets (B,) -> (B, G) rewards.
    r_rule = 1 on the target. r_NDCG: 0 on the target; on a non-target at rank i (0-based)
    -(1/log2(i + 2)) / sum_j 1/log2(j + 2), only when the target is in the group, else 0.
    (Sign as MiniOneRec's code and PROTOCOL 5: a penalty. Eq. 10 as printed, w_i / sum w_j
    with negative w, would be positive.)"""
    B, G = items.shape
    hit = items == targets[:, None]                                         # (B, G)
    a = 1.0 / torch.log2(torch.arange(G, dtype=torch.float32, device=items.device) + 2)
    ndcg = -(a / a.sum())[None].expand(B, G)
    ndcg = torch.where(hit | ~hit.any(1, keepdim=True), torch.zeros_like(ndcg), ndcg)
    return hit.float() + ndcg


def group_advantages(rewards, eps=1e-4):
    """(r - mean) / (std + eps) within each group (row). rewards (B, G)."""
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + eps)


def candidate_token_logps(model, batch, answers):
    """Log-probabilities of each candidate's answer tokens under `model`, one prompt forward
    per prompt (its cache repeated G times). batch: B prompts; answers (B, G, A) ids.
    -> (B, G, A)."""
    B, G, A = answers.shape
    out, cache, mask, pos = run_rows(model, model.config, batch, keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), -1)               # (B, V)
    flat = answers.reshape(B * G, A)
    lp0 = first.repeat_interleave(G, 0).gather(1, flat[:, :1])             # (BG, 1)
    cache.batch_repeat_interleave(G)
    mask = torch.cat([mask.repeat_interleave(G, 0), mask.new_ones((B * G, A - 1))], 1)
    steps = pos[:, -1:].repeat_interleave(G, 0) + 1 + torch.arange(A - 1, device=pos.device)
    out = model(input_ids=flat[:, :-1], attention_mask=mask, position_ids=steps,
                past_key_values=cache, use_cache=True)
    lp = torch.log_softmax(out.logits.float(), -1).gather(2, flat[:, 1:, None])[..., 0]
    return torch.cat([lp0, lp], 1).view(B, G, A)


class GRPOLoss(torch.nn.Module):
    """Eq. 5 as named terms (the loop adds them up)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def terms(self, logp, old_logp, ref_logp, adv):
        """logp, old_logp, ref_logp: (B, G, A) token log-probs; adv: (B, G)."""
        ratio = torch.exp(logp - old_logp)
        a = adv[..., None]
        surrogate = torch.min(ratio * a, ratio.clamp(1 - self.cfg.clip, 1 + self.cfg.clip) * a)
        d = ref_logp - logp
        kl = torch.exp(d) - d - 1                                           # k3, >= 0
        return {"policy": -surrogate.mean(-1).mean(), "kl": self.cfg.beta * kl.mean(-1).mean()}


@dataclass
class Rollout:
    """One step's candidates. items (B, G) catalog items, rank-ordered; targets (B,);
    rewards and adv (B, G); answers (B, G, A) the items' SID tokens + eos; extra: what a
    method's own hooks need (LASAR: the sampled N)."""
    items: torch.Tensor
    targets: torch.Tensor
    rewards: torch.Tensor
    adv: torch.Tensor
    answers: torch.Tensor
    extra: dict = field(default_factory=dict)


@dataclass
class Shard:
    """This process's part of one optimizer step's global batch: its prompts `idx` are the rows
    `rows` (a slice) of the `size` prompts of step `step` (0-based)."""
    idx: np.ndarray
    rows: slice
    size: int
    step: int


def valid_ndcg10(items, targets):
    """NDCG@10 of ranked item lists (n, k) against their targets (n,)."""
    return summarize(target_ranks(items, targets), [10])["NDCG@10"]


def rl_validation(ctx, stage_examples, rl):
    """RL's validation examples: the first `rl.valid_examples` of the stage's fixed-seed
    validation subsample (they choose the best RL checkpoint)."""
    from .generative import valid_subsample
    valid = valid_subsample(ctx, stage_examples)
    if rl.valid_examples and rl.valid_examples < len(valid):
        valid = valid.subset(np.arange(rl.valid_examples))
    return valid


class GRPOLoop:
    """GRPO from a trained model (`model`, kept as the reference `ref` too). The caller sets the
    prompts (`setup_prompts`); subclasses may override the hooks `batch`, `validate`,
    `rollout`, `rollout_sums`, `after_rollout`, `terms`, `after_step`, `log_step` and
    `state`/`load_state`. `stage` names the stage for `after_checkpoint`. Under `accelerate
    launch` every process runs it together (the module docstring). `run()` -> info."""

    reference = True                  # a frozen copy of the start model (`ref`) for the KL
    postfix = ("reward", "hit")       # the step logs shown on the progress bar

    def __init__(self, ctx, model, tok, cfg, folder, eval_batch, stage):
        self.ctx, self.tok, self.cfg, self.folder, self.stage = ctx, tok, cfg, folder, stage
        self.log_path = self.folder / "rl_log.jsonl"
        self.dev = ctx.device
        self.model = model.to(self.dev)
        self.ref = copy.deepcopy(model).eval().requires_grad_(False) if self.reference else None
        self.loss = GRPOLoss(cfg)
        self.catalog = Catalog.build(ctx, tok, self.dev)
        self.eval_batch = eval_batch
        self.amp = lambda: autocast(ctx.device, ctx.config.lm)   # forward passes only

    def setup_prompts(self, prompts, targets, valid, valid_targets):
        """prompts: an encoded task (its `collate` or the plain one gives batches); targets
        (n,) items; valid/valid_targets: the validation prompts and targets."""
        self.prompts, self.targets = prompts, torch.as_tensor(targets, device=self.dev)
        self.valid, self.valid_targets = valid, valid_targets

    def batch(self, idx):
        """Prompts `idx` (without answers) on the device."""
        return collate(self.prompts, idx, self.tok.pad_token_id, with_answers=False).to(self.dev)

    # --- hooks ------------------------------------------------------------------------------
    def validate(self):
        """Validation NDCG@10 of the current model (chooses the best checkpoint)."""
        items = beam_rank(self.model, self.valid, self.tok.pad_token_id, self.catalog,
                          self.ctx.topk, self.eval_batch, self.dev, sort=False)
        self.model.train()
        return valid_ndcg10(items, self.valid_targets)

    def rollout(self, shard):
        """G distinct candidates per prompt of this process's `shard` (a Shard) from the
        constrained beam search. -> Rollout."""
        idx = shard.idx
        b = self.batch(idx)
        self.model.eval()
        with torch.no_grad():
            items = recommend(self.model, b.ids, b.mask, self.catalog.trie,
                              self.catalog.sid_ids, width=self.cfg.group_size,
                              k=self.cfg.group_size, head=b.head).items             # (B, G)
        self.model.train()
        targets = self.targets[torch.as_tensor(idx, device=self.dev)]
        rewards = rule_ndcg_reward(items, targets)
        return Rollout(items, targets, rewards, group_advantages(rewards),
                       self.catalog.item_tokens[items.clamp_min(0)])

    def rollout_sums(self, roll):
        """Per-prompt statistics of a rollout, summed over its prompts (the loop sums them over
        processes and divides by the global batch size). -> {name: float}. `signal`: the
        groups whose G rewards are not all equal (a group of equal rewards has zero advantage
        everywhere, so it gives GRPO no gradient; reports/verdicts.py reads it)."""
        r = roll.rewards
        return {"reward": float(r.mean(1).sum()),
                "hit": float((roll.items == roll.targets[:, None]).any(1).float().sum()),
                "signal": float((r.max(1).values > r.min(1).values).float().sum())}

    def after_rollout(self, means):
        """Hook: the global batch's mean rollout statistics (`rollout_sums` / prompts), the same
        on every process, before the loss terms."""

    def terms(self, roll, idx, sl):
        """Named loss terms of the micro-batch `sl` of a rollout of the prompts `idx` (this
        process's shard). Each is a mean over the micro-batch (the loop weights it by the
        micro-batch's share of the global batch). -> (terms, extra logs: micro-batch means)."""
        mb = self.batch(idx[sl])
        with torch.no_grad():
            ref = candidate_token_logps(self.ref, mb, roll.answers[sl])
        logp = candidate_token_logps(self.model, mb, roll.answers[sl])
        return self.loss.terms(logp, logp.detach(), ref, roll.adv[sl]), {}

    def after_step(self, means):
        """Logs of the step after the optimizer update, from the global batch's mean rollout
        statistics `means`. -> dict."""
        return {"reward": means["reward"], "hit": means["hit"], "signal": means["signal"]}

    # --- one optimizer step -----------------------------------------------------------------
    def step(self, idx, step):
        """Optimizer step `step` (0-based) on the global batch `idx` (the same on every
        process): this process's shard rolled out, its loss terms summed over micro-batches
        (each weighted by its share of the global batch), the gradients summed over processes,
        one optimizer step. -> the step's logs (global means).

        The importance ratio is 1 (old_logp = logp.detach()): one on-policy update per
        rollout, as in MiniOneRec's code, so the clip never binds and the gradient is the
        plain policy gradient of the advantage-weighted log-likelihood."""
        rows = dist.my_rows(len(idx))
        shard = Shard(idx[rows], rows, len(idx), step)
        mine = shard.idx           # empty when the batch has fewer prompts than processes
        with self.amp():
            roll = self.rollout(shard) if len(mine) else None
        sums = dist.sum_over_processes(self.rollout_sums(roll) if roll is not None else {})
        means = {k: v / len(idx) for k, v in sums.items()}
        self.after_rollout(means)
        logs = {}
        for j in range(0, len(mine), self.cfg.micro_batch):
            sl = slice(j, j + self.cfg.micro_batch)
            share = len(mine[sl]) / len(idx)
            with self.amp():
                terms, extra = self.terms(roll, mine, sl)
            for k, v in extra.items():
                logs[k] = logs.get(k, 0.0) + v * share
            (sum(terms.values()) * share).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) * share
        self._sum_grads()
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        logs = dist.sum_over_processes(logs)
        logs.update(self.after_step(means), step=self.sched.last_epoch)
        if dist.is_main_process():
            self.log_step(logs)
        return logs

    def _sum_grads(self):
        """Sum the gradients over processes (each process's loss is its share of the global
        batch's loss, so the sum is the global batch's gradient). A parameter no process gave a
        gradient (LASAR's Policy Head with REINFORCE off) keeps none, as in one process: AdamW
        skips it, where a zero gradient would still decay its weights."""
        if not dist.distributed():
            return
        used = [any(g) for g in zip(*dist.gather_object([p.grad is not None
                                                          for p in self.params]))]
        dist.all_reduce_grads([p for p, u in zip(self.params, used) if u])

    def log_step(self, logs):
        """Hook (main process only): record one step's logs beyond TensorBoard: a line of
        rl_log.jsonl (a step logged again after a kill before its checkpoint: the later line
        counts)."""
        with open(self.log_path, "a") as f:
            f.write(json.dumps(logs) + "\n")

    # --- the loop -----------------------------------------------------------------------------
    def _save(self, step, best, curve, improved):
        """`best/` (when improved) and `last/`, written by the main process; every process
        waits for them (the weights and loop state are the same in all)."""
        if dist.is_main_process():
            if improved:
                replace_dir(save_model(self.model, self.tok, self.folder / "best"),
                            self.folder / "best")
            save_checkpoint(self.model, self.tok, self.folder / LAST, self.opt, self.sched,
                            step=step, best=best, curve=curve, **self.state())
        dist.barrier()
        after_checkpoint(self.stage, step)

    def state(self):
        """Extra loop state a resumed run needs (LASAR: its reward baseline)."""
        return {}

    def load_state(self, state):
        pass

    def run(self):
        """GRPO to the end, resuming from `last/` when a killed run left it, on its own random
        state (`own_rng`); in every process of a distributed run together (the caller has
        called `dist.init`). -> info."""
        with own_rng():
            return self._run()

    def _run(self):
        from torch.utils.tensorboard import SummaryWriter
        from transformers import get_cosine_schedule_with_warmup
        cfg, n = self.cfg, len(self.prompts)
        per_epoch = math.ceil(n / cfg.batch_size)
        total = per_epoch * cfg.epochs
        every = cfg.eval_every or per_epoch
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr)
        self.sched = get_cosine_schedule_with_warmup(
            self.opt, math.ceil(cfg.warmup_ratio * total), total)
        t0 = time.perf_counter()
        st = resume(self.model, self.folder / LAST, self.opt, self.sched, self.ctx.seed, "RL")
        if st is not None:
            self.load_state(st)
            step, best, curve = st["step"], st["best"], st["curve"]
        else:
            with self.amp():
                v0 = self.validate()
            step, best, curve = 0, -1.0, [[0, v0]]       # the SFT model, for info
            log.info("RL: validation NDCG@10 of the starting model %.4f", curve[0][1])
        main = dist.is_main_process()
        writer = SummaryWriter(str(self.folder / "tensorboard")) if main else None
        bar = progress(total=total, initial=step, desc="GRPO", unit="step", disable=not main)
        self.model.train()
        while step < total:
            epoch, start = divmod(step, per_epoch)
            perm = np.random.default_rng([self.ctx.seed, epoch]).permutation(n)
            for k in range(start, per_epoch):
                logs = self.step(perm[k * cfg.batch_size:(k + 1) * cfg.batch_size], step)
                step += 1
                bar.update(1)
                bar.set_postfix({k: f"{logs[k]:.3f}" for k in self.postfix})
                if writer:
                    for key, v in logs.items():
                        writer.add_scalar(f"rl/{key}", v, step)
                if step % every == 0 or step == total:
                    with self.amp():
                        v = self.validate()
                    curve.append([step, v])
                    if writer:
                        writer.add_scalar("rl/valid_ndcg10", v, step)
                    log.info("RL step %d/%d: valid NDCG@10 %.4f", step, total, v)
                    self._save(step, max(best, v), curve, v > best)
                    best = max(best, v)
        bar.close()
        if writer:
            writer.close()
        return {"valid_ndcg10_curve": curve, "sft_valid_ndcg10": curve[0][1],
                "best_step": max(curve[1:], key=lambda c: c[1])[0], "steps_run": step,
                "prompts": n, "group_size": cfg.group_size, "valid_examples": len(self.valid),
                "processes": dist.world_size(), "seconds": round(time.perf_counter() - t0, 1)}


def run_grpo(method, ctx, model, tok, codec, sft_key):
    """MiniOneRec's GRPO from its SFT model on training prompts: an artifact keyed by the SFT
    model and the RL settings, built by every process of a distributed run together.
    -> (model with the best RL weights, info)."""
    from protocol.schema import to_dict
    rl = method.config.rl
    dist.init(ctx.device)        # the process group, also when SFT was reused from the cache
    art = ctx.artifact("rl", {"sft": sft_key, "rl": to_dict(rl), "validation": {
        "topk": ctx.topk, "eval_batch": method.config.eval_batch}}, resumable=True,
        collective=True)

    def build(folder):
        rng = np.random.default_rng(ctx.seed)
        train = ctx.split.train
        if rl.max_prompts and rl.max_prompts < len(train):
            train = train.subset(np.sort(rng.choice(len(train), rl.max_prompts, replace=False)))
        valid = rl_validation(ctx, method.config.sft.valid_examples, rl)
        loop = GRPOLoop(ctx, model, tok, rl, folder, method.config.eval_batch, art.kind)
        loop.setup_prompts(codec.seqrec(train), train.targets,
                           codec.seqrec(valid, with_answers=False), valid.targets)
        return loop.run()
    return model, art.get(build, load_best(model))
