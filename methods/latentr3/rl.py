"""LatentR3's RL stage on the thought (../shared/REFERENCES.md "LatentR3", Stage 2), on the
shared GRPO step's hooks (methods/lm/grpo.py).

The LM is frozen; only the thought attention's Q, K, V train. No item is generated: each prompt
is repeated G times; row 0 gets the noise-free thought, rows 1..G-1 the thought plus Gaussian
noise of a fixed std (reference 1.5). Reward = minus the perplexity of the target's SID tokens
(and eos) under teacher forcing given the (noisy) thought. Advantage is batch-level, as the
reference computes it: each sample's reward minus the mean noise-free reward of the step's
prompts, the whole vector divided by its L2 norm (no per-group std). Loss: the advantage-
weighted log-likelihood of the target, per token, averaged over a sample's tokens and then over
samples (TRL's clipped objective with one iteration, so ratio 1, and KL beta 0: no reference
model). The beam search runs only for validation (the best checkpoint by validation NDCG@10).

Hooks used: `rollout` (rewards of the G latents, no gradient), `rollout_sums` and
`after_rollout` (the step's global mean noise-free reward and the L2 norm, from sums over
processes, so the advantages are what one process computes), `terms` (the loss with a
gradient; the prompt forward runs without a graph, the LM being frozen), `after_step`,
`validate`. The noise of a step is drawn for the whole global batch from a stream fixed by
(seed, step), so it does not depend on how the batch is shared out, and a resumed run needs no
sampler state. The reference's defects (../shared/REFERENCES.md) are avoided: any number of
groups per process, any micro-batch, every row's own target length.
"""
import math

import numpy as np
import torch

from ..lm.grpo import GRPOLoop, Rollout, valid_ndcg10


def neg_perplexity(logp):
    """Reward: minus the perplexity of the target tokens. logp (..., A) -> (...)."""
    return -torch.exp(-logp.float().mean(-1))


def step_noise(seed, step, size, group, n_thoughts, d_model, std):
    """The noise of optimizer step `step` for its global batch of `size` prompts: (size, G, T,
    d), zero on row 0 of each group (the noise-free latent), N(0, std^2) elsewhere; a stream of
    its own per (seed, step)."""
    s = np.random.SeedSequence(seed, spawn_key=(step,)).generate_state(1, np.uint64)[0]
    g = torch.Generator().manual_seed(int(s >> np.uint64(1)))
    eps = torch.randn((size, group, n_thoughts, d_model), generator=g) * std
    eps[:, 0] = 0
    return eps


class LatentR3RL(GRPOLoop):
    """The core loop with LatentR3's latent groups, reward and batch-level advantage.
    `decode(model, prompts) -> (n, k) items` is the method's decoding (validation)."""

    reference = False                        # KL beta 0: no frozen copy
    postfix = ("reward", "clean_reward")

    def __init__(self, ctx, model, tok, cfg, folder, eval_batch, decode, stage):
        super().__init__(ctx, model, tok, cfg, folder, eval_batch, stage)
        self.decode = decode
        self.seed = ctx.seed
        self.size, self.clean_mean, self.norm = None, None, None

    def validate(self):
        items = self.decode(self.model, self.valid)
        return valid_ndcg10(items, self.valid_targets)

    def step(self, idx, step):
        self.size = len(idx)                 # the global batch (after_rollout's denominator)
        return super().step(idx, step)

    def noise(self, shard):
        m = self.model
        eps = step_noise(self.seed, shard.step, shard.size, self.cfg.group_size, m.n_thoughts,
                         m.config.hidden_size, self.cfg.noise_std)[shard.rows]
        return eps.reshape(-1, *eps.shape[2:]).to(self.dev)               # (B*G, T, d)

    def rollout(self, shard):
        G, idx = self.cfg.group_size, shard.idx
        b = self.batch(idx)
        targets = self.targets[torch.as_tensor(idx, device=self.dev)]
        answers = self.catalog.item_tokens[targets]                           # (B, A)
        noise = self.noise(shard)
        self.model.eval()                    # the LM is frozen: no dropout anywhere in RL
        with torch.no_grad():
            lp = self.model.answer_logps(b, answers.repeat_interleave(G, 0), noise, repeat=G)
        rewards = neg_perplexity(lp).view(len(idx), G)
        return Rollout(targets[:, None].expand(-1, G), targets, rewards, None,
                       answers[:, None].expand(-1, G, -1), extra={"noise": noise})

    def rollout_sums(self, roll):
        r = roll.rewards.double()
        return {"reward": float(r.mean(1).sum()), "clean_reward": float(r[:, 0].sum()),
                "r_sum": float(r.sum()), "r_sq": float((r * r).sum())}

    def after_rollout(self, means):
        """The step's mean noise-free reward m and ||r - m||_2 over all its samples, from the
        global sums: sum (r - m)^2 = sum r^2 - 2 m sum r + n G m^2."""
        n, G = self.size, self.cfg.group_size
        m = means["clean_reward"]
        ss = n * means["r_sq"] - 2 * m * n * means["r_sum"] + n * G * m * m
        self.clean_mean, self.norm = m, math.sqrt(max(ss, 0.0))

    def advantages(self, rewards):
        return (rewards.double() - self.clean_mean) / max(self.norm, 1e-12)

    def terms(self, roll, idx, sl):
        G = self.cfg.group_size
        mb = self.batch(idx[sl])
        B = len(idx[sl])
        answers = roll.answers[sl][:, 0]
        noise = roll.extra["noise"].view(-1, G, *roll.extra["noise"].shape[1:])[sl]
        self.model.eval()
        lp = self.model.answer_logps(mb, answers.repeat_interleave(G, 0),
                                     noise.reshape(B * G, *noise.shape[2:]), repeat=G,
                                     prompt_grad=False).view(B, G, -1)
        adv = self.advantages(roll.rewards[sl]).to(lp.dtype)
        return {"policy": -(adv[..., None] * lp).mean(-1).mean()}, {}

    def after_step(self, means):
        return {"reward": means["reward"], "clean_reward": means["clean_reward"],
                "adv_norm": self.norm}
