"""GRPO over trie-constrained beam-search rollouts (paper Eq. 5, Appendix E.5; PROTOCOL 5).

Per prompt, G distinct candidates come from the constrained beam search (width G, rank
ordered). Reward r = r_rule + r_NDCG; advantage = (r - mean) / (std + 1e-4) within the group;
loss = -min(rho A, clip(rho, 1 - eps, 1 + eps) A) + beta KL(pi || pi_ref) per answer token
(k3 estimator), averaged over a candidate's tokens, then over candidates.

Why not TRL's GRPOTrainer: it produces rollouts by sampling from `generate` (or vLLM) and has
no seam for a deterministic beam-search group of *distinct* catalog items; LASAR's RL adds a
latent loop inside the forward pass and two more loss terms (REINFORCE on the Policy Head,
terminal KL). Overriding the trainer's rollout and loss would replace most of it, so the loss
is this small module and the loop below; LASAR extends `GRPOLoss.terms`.
"""
import copy
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.beam import SidTrie, recommend
from benchmark.config import config_hash
from benchmark.metrics import summarize, target_ranks
from benchmark.progress import progress

from .forward import collate, run_rows
from .sft import _swap, load_weights, save_model
from .tokenizer import sid_token_table

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


@dataclass
class GRPOConfig:
    lr: float
    epochs: int
    group_size: int
    batch_size: int
    micro_batch: int
    beta: float = 1e-3
    clip: float = 0.2
    warmup_ratio: float = 0.03
    max_grad_norm: float = 0.3

    def __post_init__(self):
        if self.group_size < 2:
            raise ValueError("rl.group_size must be at least 2: GRPO normalises within a group")
        if self.micro_batch > self.batch_size:
            raise ValueError("rl.micro_batch must not exceed rl.batch_size")


class GRPOLoss(torch.nn.Module):
    """Eq. 5. terms(...) returns a dict of named loss terms; the loop adds them up, so a
    method can extend the objective (LASAR: REINFORCE, terminal KL) by adding terms."""

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


class Rollout:
    """Trie, SID token table and reward for one catalog."""

    def __init__(self, ctx, tok, device):
        levels, n_codes = ctx.config["sids"]["levels"], ctx.config["sids"]["codes"]
        self.trie = SidTrie(ctx.sids().codes, n_codes).to(device)
        self.sid_ids = sid_token_table(tok, levels, n_codes, device)
        self.item_tokens = torch.cat([   # (I, levels + 1): the item's SID tokens, then eos
            self.sid_ids[torch.arange(levels, device=device),
                         torch.as_tensor(ctx.sids().codes, device=device)],
            torch.full((len(ctx.sids().codes), 1), tok.eos_token_id, device=device)], 1)

    @torch.no_grad()
    def candidates(self, model, batch, width):
        return recommend(model, batch.ids, batch.mask, self.trie, self.sid_ids, width=width,
                         k=width, head=batch.head).items


@torch.no_grad()
def rank_prompts(model, rollout, enc, pad_id, device, width, eval_batch):
    """Top-`width` items of beam search for every prompt of `enc`. -> list of (b, width)."""
    model.eval()
    out = []
    for i in range(0, len(enc), eval_batch):
        b = collate(enc, np.arange(i, min(i + eval_batch, len(enc))), pad_id,
                    with_answers=False).to(device)
        out.append(recommend(model, b.ids, b.mask, rollout.trie, rollout.sid_ids, width=width,
                             k=width, head=b.head).items.cpu().numpy())
    return out


def _ndcg10(items, targets):
    return summarize(target_ranks(np.concatenate(items), targets), [10])["NDCG@10"]


def run_grpo(method, ctx, model, tok, codec):
    """GRPO from the SFT model. -> (model with the best RL weights, info)."""
    rl = method.config["rl"]
    cfg = GRPOConfig(lr=rl["lr"], epochs=rl["epochs"], group_size=rl["group_size"],
                     batch_size=rl["batch_size"], micro_batch=rl["micro_batch"], beta=rl["beta"],
                     clip=rl["clip"], warmup_ratio=rl["warmup_ratio"],
                     max_grad_norm=rl["max_grad_norm"])
    folder = ctx.results_dir / "_work" / f"rl-{config_hash([method.sft_key(ctx), rl])}"
    if (folder / "done.json").is_file():
        load_weights(model, folder / "best")
        return model, json.loads((folder / "done.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    return GRPOLoop(method, ctx, model, tok, codec, cfg, rl, folder).run()


class GRPOLoop:
    def __init__(self, method, ctx, model, tok, codec, cfg, rl, folder):
        self.ctx, self.tok, self.codec, self.cfg, self.rl, self.folder = \
            ctx, tok, codec, cfg, rl, Path(folder)
        self.dev = ctx.device
        self.model = model.to(self.dev)
        self.ref = copy.deepcopy(model).eval().requires_grad_(False)
        self.loss = self.make_loss(method)
        self.rollout = Rollout(ctx, tok, self.dev)
        self.eval_batch = method.config["eval_batch"]
        self.setup_prompts(method, ctx, codec, rl)

    def setup_prompts(self, method, ctx, codec, rl):
        """RL prompts (a fixed-seed subsample of training examples) and validation prompts."""
        rng = np.random.default_rng(ctx.seed)
        train = ctx.split.train
        if rl["max_prompts"] and rl["max_prompts"] < len(train):
            train = train.subset(np.sort(rng.choice(len(train), rl["max_prompts"], replace=False)))
        self.prompts = codec.seqrec(train)
        self.targets = torch.as_tensor(train.targets, device=self.dev)
        valid = method.valid_subsample(ctx)
        if rl["valid_examples"] and rl["valid_examples"] < len(valid):
            valid = valid.subset(np.arange(rl["valid_examples"]))
        self.valid, self.valid_targets = codec.seqrec(valid, with_answers=False), valid.targets

    def make_loss(self, method):
        return GRPOLoss(self.cfg)

    def _validate(self):
        items = rank_prompts(self.model, self.rollout, self.valid, self.tok.pad_token_id,
                             self.dev, self.ctx.topk, self.eval_batch)
        self.model.train()
        return _ndcg10(items, self.valid_targets)

    def _step(self, idx):
        cfg, G = self.cfg, self.cfg.group_size
        b = collate(self.prompts, idx, self.tok.pad_token_id, with_answers=False).to(self.dev)
        self.model.eval()
        items = self.rollout.candidates(self.model, b, G)                     # (B, G)
        self.model.train()
        rewards = rule_ndcg_reward(items, self.targets[torch.as_tensor(idx, device=self.dev)])
        adv = group_advantages(rewards)
        answers = self.rollout.item_tokens[items.clamp_min(0)]                # (B, G, A)
        logs = {}
        for j in range(0, len(idx), cfg.micro_batch):
            sl = slice(j, j + cfg.micro_batch)
            mb = collate(self.prompts, idx[sl], self.tok.pad_token_id, with_answers=False)
            mb = mb.to(self.dev)
            with torch.no_grad():
                ref = candidate_token_logps(self.ref, mb, answers[sl])
            logp = candidate_token_logps(self.model, mb, answers[sl])
            terms = self.loss.terms(logp, logp.detach(), ref, adv[sl])
            share = len(idx[sl]) / len(idx)
            (sum(terms.values()) * share).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) * share
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        logs["reward"] = float(rewards.mean())
        logs["hit"] = float((items == self.targets[torch.as_tensor(idx, device=self.dev)][:, None])
                            .any(1).float().mean())
        return logs

    def _save(self, step, best, curve, improved):
        if improved:
            _swap(save_model(self.model, self.tok, self.folder / "best"), self.folder / "best")
        tmp = save_model(self.model, self.tok, self.folder / "last")
        torch.save({"step": step, "best": best, "curve": curve, "opt": self.opt.state_dict(),
                    "sched": self.sched.state_dict()}, tmp / "trainer_state.pt")
        _swap(tmp, self.folder / "last")

    def run(self):
        from torch.utils.tensorboard import SummaryWriter
        from transformers import get_cosine_schedule_with_warmup
        cfg, n = self.cfg, len(self.prompts)
        per_epoch = math.ceil(n / cfg.batch_size)
        total = per_epoch * cfg.epochs
        every = self.rl["eval_every"] or per_epoch
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                     lr=cfg.lr)
        self.sched = get_cosine_schedule_with_warmup(
            self.opt, math.ceil(cfg.warmup_ratio * total), total)
        state = self.folder / "last" / "trainer_state.pt"
        t0 = time.perf_counter()
        if state.is_file():
            st = torch.load(state, map_location="cpu", weights_only=False)
            load_weights(self.model, self.folder / "last")
            self.opt.load_state_dict(st["opt"])
            self.sched.load_state_dict(st["sched"])
            step, best, curve = st["step"], st["best"], st["curve"]
        else:
            step, best, curve = 0, -1.0, [[0, self._validate()]]      # the SFT model, for info
            log.info("RL: validation NDCG@10 of the SFT model %.4f", curve[0][1])
        writer = SummaryWriter(str(self.folder / "tensorboard"))
        bar = progress(total=total, initial=step, desc="GRPO", unit="step")
        self.model.train()
        while step < total:
            epoch, start = divmod(step, per_epoch)
            perm = np.random.default_rng([self.ctx.seed, epoch]).permutation(n)
            for k in range(start, per_epoch):
                logs = self._step(perm[k * cfg.batch_size:(k + 1) * cfg.batch_size])
                step += 1
                bar.update(1)
                bar.set_postfix(reward=f"{logs['reward']:.3f}", hit=f"{logs['hit']:.2f}")
                for key, v in logs.items():
                    writer.add_scalar(f"rl/{key}", v, step)
                if step % every == 0 or step == total:
                    v = self._validate()
                    curve.append([step, v])
                    writer.add_scalar("rl/valid_ndcg10", v, step)
                    log.info("RL step %d/%d: valid NDCG@10 %.4f", step, total, v)
                    self._save(step, max(best, v), curve, v > best)
                    best = max(best, v)
        bar.close()
        writer.close()
        load_weights(self.model, self.folder / "best")
        info = {"valid_ndcg10_curve": curve, "sft_valid_ndcg10": curve[0][1],
                "best_step": max(curve[1:], key=lambda c: c[1])[0], "steps_run": step,
                "prompts": n, "group_size": cfg.group_size,
                "valid_examples": len(self.valid), "seconds": round(time.perf_counter() - t0, 1)}
        (self.folder / "done.json").write_text(json.dumps(info))
        return self.model, info
