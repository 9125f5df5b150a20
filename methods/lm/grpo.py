"""GRPO over trie-constrained beam-search rollouts (paper Eq. 5, Appendix E.5; PROTOCOL 5).

Per prompt, G distinct candidates come from the constrained beam search (width G, rank
ordered). Reward r = r_rule + r_NDCG; advantage = (r - mean) / (std + 1e-4) within the group;
loss = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + beta KL(pi || pi_ref) per answer token
(k3 estimator), averaged over a candidate's tokens, then over candidates.

One optimizer step (`GRPOLoop.step`) is written once. A method changes what it needs through
hooks: `rollout` (how candidates are drawn: LASAR samples N and runs its latent loop), `terms`
(the named loss terms of a micro-batch: LASAR adds terminal KL and REINFORCE to the GRPO
terms), `after_step` (LASAR's reward baseline) and `log_step` (each step's logs, appended to
rl_log.jsonl). A checkpoint holds the model, optimizer, scheduler, torch's random state (LoRA
dropout) and the hook `state` (LASAR's baseline and N sampler), so a killed run resumes to what
an uninterrupted one computes (tests/test_resume.py, tests/test_lm_train.py).

Why not TRL's GRPOTrainer: it produces rollouts by sampling from `generate` (or vLLM) and has
no seam for a deterministic beam-search group of *distinct* catalog items; LASAR's RL adds a
latent loop inside the forward pass and two more loss terms. Overriding the trainer's rollout
and loss would replace most of it, so the loss is `GRPOLoss` and the loop is below.
"""
import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmark.protocol.beam import recommend
from benchmark.protocol.metrics import summarize, target_ranks
from benchmark.protocol.progress import progress

from .decode import Catalog, beam_rank
from .forward import collate, run_rows
from benchmark.protocol.io import replace_dir

from .sft import crash_point, load_best, own_rng, resume, save_checkpoint, save_model

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
    `rollout`, `terms`, `after_step`, `log_step` and `state`/`load_state`. `stage` names the
    stage for `crash_point`. `run()` -> info."""

    def __init__(self, ctx, model, tok, cfg, folder, eval_batch, stage):
        self.ctx, self.tok, self.cfg, self.folder, self.stage = ctx, tok, cfg, folder, stage
        self.log_path = self.folder / "rl_log.jsonl"
        self.dev = ctx.device
        self.model = model.to(self.dev)
        self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self.loss = GRPOLoss(cfg)
        self.catalog = Catalog.build(ctx, tok, self.dev)
        self.eval_batch = eval_batch

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

    def rollout(self, idx):
        """G distinct candidates per prompt from the constrained beam search. -> Rollout."""
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

    def terms(self, roll, idx, sl):
        """Named loss terms of the micro-batch `sl` of a rollout. -> (terms, extra logs)."""
        mb = self.batch(idx[sl])
        with torch.no_grad():
            ref = candidate_token_logps(self.ref, mb, roll.answers[sl])
        logp = candidate_token_logps(self.model, mb, roll.answers[sl])
        return self.loss.terms(logp, logp.detach(), ref, roll.adv[sl]), {}

    def after_step(self, roll):
        """Logs of the step after the optimizer update. -> dict."""
        return {"reward": float(roll.rewards.mean()),
                "hit": float((roll.items == roll.targets[:, None]).any(1).float().mean())}

    # --- one optimizer step -----------------------------------------------------------------
    def step(self, idx):
        """Rollout, then the summed loss terms over micro-batches, one optimizer step.

        The importance ratio is 1 (old_logp = logp.detach()): one on-policy update per
        rollout, as in MiniOneRec's code, so the clip never binds and the gradient is the
        plain policy gradient of the advantage-weighted log-likelihood."""
        roll = self.rollout(idx)
        logs = {}
        for j in range(0, len(idx), self.cfg.micro_batch):
            sl = slice(j, j + self.cfg.micro_batch)
            share = len(idx[sl]) / len(idx)
            terms, extra = self.terms(roll, idx, sl)
            for k, v in extra.items():
                logs[k] = logs.get(k, 0.0) + v * share
            (sum(terms.values()) * share).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) * share
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        logs.update(self.after_step(roll), step=self.sched.last_epoch)
        self.log_step(logs)
        return logs

    def log_step(self, logs):
        """Hook: record one step's logs beyond TensorBoard: a line of rl_log.jsonl (a step
        logged again after a kill before its checkpoint: the later line counts)."""
        with open(self.log_path, "a") as f:
            f.write(json.dumps(logs) + "\n")

    # --- the loop -----------------------------------------------------------------------------
    def _save(self, step, best, curve, improved):
        if improved:
            replace_dir(save_model(self.model, self.tok, self.folder / "best"),
                        self.folder / "best")
        save_checkpoint(self.model, self.tok, self.folder / "last", self.opt, self.sched,
                        step=step, best=best, curve=curve, **self.state())
        crash_point(self.stage, step)

    def state(self):
        """Extra loop state a resumed run needs (LASAR: its reward baseline)."""
        return {}

    def load_state(self, state):
        pass

    def run(self):
        """GRPO to the end, resuming from `last/` when a killed run left it, on its own random
        state (`own_rng`). -> info."""
        with own_rng():
            return self._run()

    def _run(self):
        from torch.utils.tensorboard import SummaryWriter
        from transformers import get_cosine_schedule_with_warmup
        cfg, n = self.cfg, len(self.prompts)
        per_epoch = math.ceil(n / cfg.batch_size)
        total = per_epoch * cfg.epochs
        every = cfg.eval_every or per_epoch
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                     lr=cfg.lr)
        self.sched = get_cosine_schedule_with_warmup(
            self.opt, math.ceil(cfg.warmup_ratio * total), total)
        t0 = time.perf_counter()
        st = resume(self.model, self.folder / "last", self.opt, self.sched, self.ctx.seed, "RL")
        if st is not None:
            self.load_state(st)
            step, best, curve = st["step"], st["best"], st["curve"]
        else:
            step, best, curve = 0, -1.0, [[0, self.validate()]]       # the SFT model, for info
            log.info("RL: validation NDCG@10 of the starting model %.4f", curve[0][1])
        writer = SummaryWriter(str(self.folder / "tensorboard"))
        bar = progress(total=total, initial=step, desc="GRPO", unit="step")
        self.model.train()
        while step < total:
            epoch, start = divmod(step, per_epoch)
            perm = np.random.default_rng([self.ctx.seed, epoch]).permutation(n)
            for k in range(start, per_epoch):
                logs = self.step(perm[k * cfg.batch_size:(k + 1) * cfg.batch_size])
                step += 1
                bar.update(1)
                bar.set_postfix(reward=f"{logs['reward']:.3f}", hit=f"{logs['hit']:.2f}")
                for key, v in logs.items():
                    writer.add_scalar(f"rl/{key}", v, step)
                if step % every == 0 or step == total:
                    v = self.validate()
                    curve.append([step, v])
                    writer.add_scalar("rl/valid_ndcg10", v, step)
                    log.info("RL step %d/%d: valid NDCG@10 %.4f", step, total, v)
                    self._save(step, max(best, v), curve, v > best)
                    best = max(best, v)
        bar.close()
        writer.close()
        return {"valid_ndcg10_curve": curve, "sft_valid_ndcg10": curve[0][1],
                "best_step": max(curve[1:], key=lambda c: c[1])[0], "steps_run": step,
                "prompts": n, "group_size": cfg.group_size, "valid_examples": len(self.valid),
                "seconds": round(time.perf_counter() - t0, 1)}


def run_grpo(method, ctx, model, tok, codec, sft_key):
    """MiniOneRec's GRPO from its SFT model on training prompts: an artifact keyed by the SFT
    model and the RL settings. -> (model with the best RL weights, info)."""
    from benchmark.protocol.schema import to_dict
    rl = method.config.rl
    art = ctx.artifact("rl", {"sft": sft_key, "rl": to_dict(rl), "validation": {
        "topk": ctx.topk, "eval_batch": method.config.eval_batch}}, resumable=True)

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
