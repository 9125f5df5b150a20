"""LASAR's RL phase (paper Section 2.4, Eq. 5-6, Appendix E.4-E.5; PROTOCOL 7):

  L = L_GRPO + gamma_KL L_terminalKL + gamma_RF L_REINFORCE

on the generative core's GRPO loop (methods/lm/grpo.py). Per prompt the Policy Head samples N
(all G beams of a prompt share it), the constrained beam search with the latent loop gives G
distinct candidates, and
  - GRPO: the core's clipped-ratio loss with the k3 KL to the frozen Stage-2 model, both
    policies run with the same N;
  - terminal KL: D_KL^bidir(h_N, h_final^cot), the last latent state against the anchor of the
    CoT's last segment, as a direct loss (Appendix E.4);
  - REINFORCE (Eq. 6): -(R_group - b_EMA - lambda N) log pi(N | h_0) - eta H(pi), R_group the
    mean reward of the prompt's G candidates, b_EMA an exponential moving average of R_group.
Each of the last two can be switched off (Table 3). Every step logs mean N, reward and each
term to TensorBoard and to rl_log.jsonl (Figure 5a).
"""
import json

import numpy as np
import torch

from ..lm.grpo import GRPOLoop, _ndcg10, group_advantages, rule_ndcg_reward
from .latent import bidir_kl, last_states


def latent_candidate_logps(latent, batch, answers, n):
    """Log-probs of G candidates' answer tokens after the latent loop with N = n per prompt.
    answers (B, G, A). -> (logp (B, G, A), policy logits (B, N_max), states (B, max n, D))."""
    B, G, A = answers.shape
    pi_logits, n, states, stepper = latent.run(batch, n=n)
    first = latent.end_logp(stepper)                                      # (B, V)
    flat = answers.reshape(B * G, A)
    lp0 = first.repeat_interleave(G, 0).gather(1, flat[:, :1])            # (BG, 1)
    stepper.repeat_rows(G)
    logits = stepper.extend(flat[:, :-1]).logits                          # (BG, A-1, V)
    lp = torch.log_softmax(logits.float(), -1).gather(2, flat[:, 1:, None])[..., 0]
    return torch.cat([lp0, lp], 1).view(B, G, A), pi_logits, states


def reinforce_terms(pi_logits, n, r_group, baseline, step_penalty, entropy_coef):
    """Eq. 6 per prompt, averaged. -> (loss, entropy mean)."""
    logp = torch.log_softmax(pi_logits.float(), -1)                       # (B, N_max)
    chosen = logp.gather(1, (n - 1)[:, None])[:, 0]
    adv = (r_group - baseline - step_penalty * n.float()).detach()
    entropy = -(logp.exp() * logp).sum(-1)
    return (-(adv * chosen) - entropy_coef * entropy).mean(), entropy.mean()


class LasarGRPO(GRPOLoop):
    """The core GRPO loop with LASAR's rollout (latent loop, sampled N) and extra terms."""

    def __init__(self, method, ctx, latent, tok, codec, cfg, rl, folder, pool, valid):
        self.pool, self.valid_prompts = pool, valid
        super().__init__(method, ctx, latent, tok, codec, cfg, rl, folder)
        self.method = method
        self.baseline = None
        self.gen = torch.Generator(device=self.dev).manual_seed(ctx.seed)
        self.log_path = self.folder / "rl_log.jsonl"

    def setup_prompts(self, method, ctx, codec, rl):
        """RL prompts from the CoT pool (they need anchors for the terminal KL)."""
        n = len(self.pool.task)
        k = min(rl["max_prompts"] or n, n)
        idx = np.sort(np.random.default_rng(ctx.seed).choice(n, k, replace=False))
        self.prompts = self.pool.task.subset(idx)
        self.targets = torch.as_tensor(self.pool.examples.targets[idx], device=self.dev)
        self.valid, self.valid_targets = self.valid_prompts

    def _validate(self):
        items, _ = self.method.decode(self.model, self.valid, self.dev)
        self.model.train()
        return _ndcg10([items], self.valid_targets)

    def _step(self, idx):
        cfg, rl, G = self.cfg, self.rl, self.cfg.group_size
        latent = self.model
        b = self.prompts.collate(idx, self.tok.pad_token_id).to(self.dev)
        latent.eval()
        with torch.no_grad():                      # N ~ pi(. | h_0), then the G-beam rollout
            h0, _ = latent.encode(b)
            n = latent.choose_n(latent.policy_logits(h0), "sample", generator=self.gen)
            items = self.method.beam(latent, b, G, n=n).items                # (B, G)
        latent.train()
        tgt = self.targets[torch.as_tensor(idx, device=self.dev)]
        rewards = rule_ndcg_reward(items, tgt)                                # (B, G)
        adv = group_advantages(rewards)
        r_group = rewards.mean(1)
        if self.baseline is None:
            self.baseline = float(r_group.mean())
        answers = self.rollout.item_tokens[items.clamp_min(0)]               # (B, G, A)
        logs = {}
        for j in range(0, len(idx), cfg.micro_batch):
            sl = slice(j, j + cfg.micro_batch)
            mb = self.prompts.collate(idx[sl], self.tok.pad_token_id).to(self.dev)
            with torch.no_grad():
                ref, _, _ = latent_candidate_logps(self.ref, mb, answers[sl], n[sl])
            logp, pi_logits, states = latent_candidate_logps(latent, mb, answers[sl], n[sl])
            terms = self.loss.terms(logp, logp.detach(), ref, adv[sl])
            if rl["terminal_kl"]:
                h_n = last_states(states, n[sl])
                terms["terminal_kl"] = rl["terminal_kl_weight"] * bidir_kl(
                    h_n, mb.extra["last_anchor"]).mean()
            if rl["reinforce"]:
                rf, ent = reinforce_terms(pi_logits, n[sl], r_group[sl], self.baseline,
                                          rl["step_penalty"], rl["entropy_coef"])
                terms["reinforce"] = rl["reinforce_coef"] * rf
                logs["policy_entropy"] = logs.get("policy_entropy", 0.0) + float(ent) * \
                    len(idx[sl]) / len(idx)
            share = len(idx[sl]) / len(idx)
            (sum(terms.values()) * share).backward()
            for k, v in terms.items():
                logs[k] = logs.get(k, 0.0) + float(v.detach()) * share
        torch.nn.utils.clip_grad_norm_(latent.parameters(), cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.baseline = rl["ema_decay"] * self.baseline + (1 - rl["ema_decay"]) * \
            float(r_group.mean())
        logs.update(reward=float(rewards.mean()), mean_n=float(n.float().mean()),
                    hit=float((items == tgt[:, None]).any(1).float().mean()),
                    baseline=self.baseline, step=self.sched.last_epoch)
        with open(self.log_path, "a") as f:
            f.write(json.dumps(logs) + "\n")
        return logs
