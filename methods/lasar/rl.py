"""LASAR's RL phase (paper Section 2.4, Eq. 5-6, Appendix E.4-E.5; PROTOCOL 7):

  L = L_GRPO + gamma_KL L_terminalKL + gamma_RF L_REINFORCE

on the generative core's GRPO step (methods/lm/grpo.py), through its hooks. Per prompt the
Policy Head samples N (all G beams of a prompt share it), the constrained beam search with the
latent loop gives G distinct candidates (`rollout`), and `terms` returns
  - GRPO: the core's clipped-ratio loss with the k3 KL to the frozen Stage-2 model, both
    policies run with the same N;
  - terminal KL: D_KL^bidir(h_N, h_final^cot), the last latent state against the anchor of the
    CoT's last segment, as a direct loss (Appendix E.4);
  - REINFORCE (Eq. 6): -(R_group - b_EMA - lambda N) log pi(N | h_0) - eta H(pi), R_group the
    mean reward of the prompt's G candidates, b_EMA an exponential moving average of R_group.
Each of the last two can be switched off (Table 3). `after_step` updates b_EMA and logs mean N,
reward and each term per step to TensorBoard and (the core's `log_step`) to rl_log.jsonl
(Figure 5a).

Across processes (the core's docstring): each process rolls out its contiguous shard of the
step's global batch. b_EMA (and its first value, the first batch's mean R_group) is updated
from the global batch's mean R_group, summed over processes, so it is the same everywhere and
what one process computes; the REINFORCE and terminal-KL terms are micro-batch means weighted
by the core like the GRPO terms. The sampled N does not depend on the split: each step draws
one uniform per prompt of the *global* batch from a stream fixed by (seed, step)
(`step_uniforms`), and a prompt's N is the inverse CDF of the Policy Head's probabilities at
its uniform (`sample_n`), in one process as in several; a resumed run needs no sampler state.
"""
import numpy as np
import torch

from ..lm.grpo import GRPOLoop, Rollout, valid_ndcg10, group_advantages, rule_ndcg_reward
from .latent import bidir_kl, last_states


def latent_candidate_logps(latent, batch, answers, n, detach_policy_input=True):
    """Log-probs of G candidates' answer tokens after the latent loop with N = n per prompt.
    answers (B, G, A). -> (logp (B, G, A), policy logits (B, N_max), states (B, max n, D));
    the policy logits read h_0 detached unless told otherwise (Section 2.4: REINFORCE updates
    phi only)."""
    B, G, A = answers.shape
    out = latent.run(batch, n=n, detach_policy_input=detach_policy_input)
    first = latent.end_logp(out.stepper)                                  # (B, V)
    flat = answers.reshape(B * G, A)
    lp0 = first.repeat_interleave(G, 0).gather(1, flat[:, :1])            # (BG, 1)
    out.stepper.repeat_rows(G)
    logits = out.stepper.extend(flat[:, :-1]).logits                      # (BG, A-1, V)
    lp = torch.log_softmax(logits.float(), -1).gather(2, flat[:, 1:, None])[..., 0]
    return torch.cat([lp0, lp], 1).view(B, G, A), out.policy_logits, out.states


def step_uniforms(seed, step, size):
    """One uniform in [0, 1) per prompt of optimizer step `step`'s global batch of `size`
    prompts: a stream of its own per (seed, step), the same on every process. -> (size,)
    float64 array."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(step,))).random(size)


def sample_n(pi_logits, u):
    """N ~ pi(. | h_0) by the inverse CDF: the smallest N whose cumulative probability exceeds
    the prompt's uniform. pi_logits (B, N_max); u (B,) uniforms in [0, 1). -> (B,) in
    1..N_max."""
    cdf = torch.softmax(pi_logits.double(), -1).cumsum(-1)                 # (B, N_max)
    below = (cdf <= u.to(cdf)[:, None]).sum(-1)
    return (below + 1).clamp_max(pi_logits.shape[-1])     # u >= cdf[-1] (rounding): N_max


def reinforce_terms(pi_logits, n, r_group, baseline, step_penalty, entropy_coef):
    """Eq. 6 per prompt, averaged. -> (loss, entropy mean)."""
    logp = torch.log_softmax(pi_logits.float(), -1)                       # (B, N_max)
    chosen = logp.gather(1, (n - 1)[:, None])[:, 0]
    adv = (r_group - baseline - step_penalty * n.float()).detach()
    entropy = -(logp.exp() * logp).sum(-1)
    return (-(adv * chosen) - entropy_coef * entropy).mean(), entropy.mean()


class LasarGRPO(GRPOLoop):
    """The core GRPO loop with LASAR's rollout (latent loop, sampled N) and extra terms.
    `decoder`: the method's decoding (`beam` for one batch, `decode` for many).
    REINFORCE reads h_0 detached whatever Stage 2 did (`detach_policy_input`): Section 2.4
    updates only the head's parameters phi with it; the LM learns from the GRPO terms."""

    detach_policy_input = True

    def __init__(self, ctx, latent, tok, cfg, folder, eval_batch, decoder, stage):
        super().__init__(ctx, latent, tok, cfg, folder, eval_batch, stage)
        self.decoder = decoder
        self.baseline = None
        self.seed = ctx.seed

    def batch(self, idx):
        return self.prompts.collate(idx, self.tok.pad_token_id).to(self.dev)

    def validate(self):
        items, _ = self.decoder.decode(self.model, self.valid)
        self.model.train()
        return valid_ndcg10(items, self.valid_targets)

    def rollout(self, shard):
        latent, G, idx = self.model, self.cfg.group_size, shard.idx
        b = self.batch(idx)
        u = torch.as_tensor(step_uniforms(self.seed, shard.step, shard.size)[shard.rows],
                            device=self.dev)
        latent.eval()
        with torch.no_grad():                      # N ~ pi(. | h_0), then the G-beam rollout
            h0, _ = latent.encode(b)
            n = sample_n(latent.policy_logits(h0), u)
            items = self.decoder.beam(latent, b, G, n=n).items                # (B, G)
        latent.train()
        targets = self.targets[torch.as_tensor(idx, device=self.dev)]
        rewards = rule_ndcg_reward(items, targets)                            # (B, G)
        return Rollout(items, targets, rewards, group_advantages(rewards),
                       self.catalog.item_tokens[items.clamp_min(0)],
                       extra={"n": n, "r_group": rewards.mean(1)})

    def rollout_sums(self, roll):
        return {**super().rollout_sums(roll), "n": float(roll.extra["n"].sum())}

    def after_rollout(self, means):
        """The first step's baseline: the global batch's mean R_group (the core's mean reward:
        R_group is a prompt's mean reward)."""
        if self.baseline is None:
            self.baseline = means["reward"]

    def terms(self, roll, idx, sl):
        rl, n = self.cfg, roll.extra["n"]
        mb = self.batch(idx[sl])
        with torch.no_grad():
            ref, _, _ = latent_candidate_logps(self.ref, mb, roll.answers[sl], n[sl])
        logp, pi_logits, states = latent_candidate_logps(self.model, mb, roll.answers[sl], n[sl],
                                                         self.detach_policy_input)
        terms, logs = self.loss.terms(logp, logp.detach(), ref, roll.adv[sl]), {}
        if rl.terminal_kl:
            h_n = last_states(states, n[sl])
            terms["terminal_kl"] = rl.terminal_kl_weight * bidir_kl(
                h_n, mb.extra["last_anchor"]).mean()
        if rl.reinforce:
            rf, ent = reinforce_terms(pi_logits, n[sl], roll.extra["r_group"][sl], self.baseline,
                                      rl.step_penalty, rl.entropy_coef)
            terms["reinforce"] = rl.reinforce_coef * rf
            logs["policy_entropy"] = float(ent.detach())
        return terms, logs

    def after_step(self, means):
        """b_EMA <- decay b_EMA + (1 - decay) mean R_group over the global batch."""
        self.baseline = (self.cfg.ema_decay * self.baseline + (1 - self.cfg.ema_decay) *
                         means["reward"])
        return {"reward": means["reward"], "mean_n": means["n"], "hit": means["hit"],
                "signal": means["signal"], "baseline": self.baseline}

    def state(self):
        return {"baseline": self.baseline}

    def load_state(self, state):
        self.baseline = state["baseline"]


def rl_prompts(pool, cfg, seed):
    """RL prompts from the CoT pool (they need anchors for the terminal KL). -> (prompts,
    targets)."""
    n = len(pool.task)
    k = min(cfg.max_prompts or n, n)
    idx = np.sort(np.random.default_rng(seed).choice(n, k, replace=False))
    return pool.task.subset(idx), pool.examples.targets[idx]
