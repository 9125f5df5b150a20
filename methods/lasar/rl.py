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
"""
import numpy as np
import torch

from ..lm.grpo import GRPOLoop, Rollout, valid_ndcg10, group_advantages, rule_ndcg_reward
from .latent import bidir_kl, last_states


def latent_candidate_logps(latent, batch, answers, n):
    """Log-probs of G candidates' answer tokens after the latent loop with N = n per prompt.
    answers (B, G, A). -> (logp (B, G, A), policy logits (B, N_max), states (B, max n, D))."""
    B, G, A = answers.shape
    out = latent.run(batch, n=n)
    first = latent.end_logp(out.stepper)                                  # (B, V)
    flat = answers.reshape(B * G, A)
    lp0 = first.repeat_interleave(G, 0).gather(1, flat[:, :1])            # (BG, 1)
    out.stepper.repeat_rows(G)
    logits = out.stepper.extend(flat[:, :-1]).logits                      # (BG, A-1, V)
    lp = torch.log_softmax(logits.float(), -1).gather(2, flat[:, 1:, None])[..., 0]
    return torch.cat([lp0, lp], 1).view(B, G, A), out.policy_logits, out.states


def reinforce_terms(pi_logits, n, r_group, baseline, step_penalty, entropy_coef):
    """Eq. 6 per prompt, averaged. -> (loss, entropy mean)."""
    logp = torch.log_softmax(pi_logits.float(), -1)                       # (B, N_max)
    chosen = logp.gather(1, (n - 1)[:, None])[:, 0]
    adv = (r_group - baseline - step_penalty * n.float()).detach()
    entropy = -(logp.exp() * logp).sum(-1)
    return (-(adv * chosen) - entropy_coef * entropy).mean(), entropy.mean()


class LasarGRPO(GRPOLoop):
    """The core GRPO loop with LASAR's rollout (latent loop, sampled N) and extra terms.
    `decoder`: the method's decoding (`beam` for one batch, `decode` for many)."""

    def __init__(self, ctx, latent, tok, cfg, folder, eval_batch, decoder, stage):
        super().__init__(ctx, latent, tok, cfg, folder, eval_batch, stage)
        self.decoder = decoder
        self.baseline = None
        self.gen = torch.Generator(device=self.dev).manual_seed(ctx.seed)

    def batch(self, idx):
        return self.prompts.collate(idx, self.tok.pad_token_id).to(self.dev)

    def validate(self):
        items, _ = self.decoder.decode(self.model, self.valid)
        self.model.train()
        return valid_ndcg10(items, self.valid_targets)

    def rollout(self, idx):
        latent, G = self.model, self.cfg.group_size
        b = self.batch(idx)
        latent.eval()
        with torch.no_grad():                      # N ~ pi(. | h_0), then the G-beam rollout
            h0, _ = latent.encode(b)
            n = latent.choose_n(latent.policy_logits(h0), "sample", generator=self.gen)
            items = self.decoder.beam(latent, b, G, n=n).items                # (B, G)
        latent.train()
        targets = self.targets[torch.as_tensor(idx, device=self.dev)]
        rewards = rule_ndcg_reward(items, targets)                            # (B, G)
        adv = group_advantages(rewards)
        r_group = rewards.mean(1)
        if self.baseline is None:
            self.baseline = float(r_group.mean())
        return Rollout(items, targets, rewards, adv, self.catalog.item_tokens[items.clamp_min(0)],
                       extra={"n": n, "r_group": r_group})

    def terms(self, roll, idx, sl):
        rl, n = self.cfg, roll.extra["n"]
        mb = self.batch(idx[sl])
        with torch.no_grad():
            ref, _, _ = latent_candidate_logps(self.ref, mb, roll.answers[sl], n[sl])
        logp, pi_logits, states = latent_candidate_logps(self.model, mb, roll.answers[sl], n[sl])
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

    def after_step(self, roll):
        r_group, n = roll.extra["r_group"], roll.extra["n"]
        self.baseline = self.cfg.ema_decay * self.baseline + (1 - self.cfg.ema_decay) * \
            float(r_group.mean())
        core = super().after_step(roll)
        return {"reward": core["reward"], "mean_n": float(n.float().mean()), "hit": core["hit"],
                "baseline": self.baseline}

    def state(self):
        return {"baseline": self.baseline, "generator": self.gen.get_state()}

    def load_state(self, state):
        self.baseline = state.get("baseline")
        if state.get("generator") is not None:
            self.gen.set_state(state["generator"])


def rl_prompts(pool, cfg, seed):
    """RL prompts from the CoT pool (they need anchors for the terminal KL). -> (prompts,
    targets)."""
    n = len(pool.task)
    k = min(cfg.max_prompts or n, n)
    idx = np.sort(np.random.default_rng(seed).choice(n, k, replace=False))
    return pool.task.subset(idx), pool.examples.targets[idx]
