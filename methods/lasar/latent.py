"""LASAR's latent loop and Policy Head (paper Section 2.2, Eq. 3; Appendix E.1, E.6).

Layout: [prompt ... <s>] [slot_1 ... slot_maxN] <e> [answer]. h_0 is the last-layer hidden
state at the prompt's last token (<s>, as Coconut's begin-of-thought token); slot t takes
h_{t-1} as its input embedding instead of a token embedding (the `<t>` token never enters the
model) and yields h_t. A batch runs max(N) slots; slot t of a sample with N < t is masked out
of all later attention and does not advance its position ids, so the sample computes exactly
what it would alone (Appendix E.1, Figure 6; tests/test_lasar.py). The KV cache of the
prompt and of the latent slots is reused by `<e>` and the answer (training) or by the beam
search (decoding, through its prefix hook).
"""
from typing import NamedTuple

import torch
import torch.nn.functional as F

from protocol.beam import KVStepper

from ..lm.forward import run_rows
from ..lm.wrapped import WrappedLM

START, THOUGHT, END = "<|latent_start|>", "<|latent|>", "<|latent_end|>"
LATENT_TOKENS = (START, THOUGHT, END)


def add_latent_tokens(model, tok):
    """Add <s>, <t>, <e> to the tokenizer and the embedding table (after Stage 1, whose model
    is MiniOneRec's and has no latent tokens). New rows start at the mean embedding."""
    missing = [t for t in LATENT_TOKENS if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
        from ..lm.backbone import resize_vocab
        resize_vocab(model, len(tok))
    return model


class PolicyHead(torch.nn.Module):
    """pi_phi(N | h_0) = Softmax(W2 tanh(W1 h_0 + b1) + b2) over N = 1..N_max (Section 2.2).
    forward -> logits (B, N_max); index k stands for N = k + 1."""

    def __init__(self, d_model, hidden, n_max):
        super().__init__()
        self.n_max = n_max
        self.w1 = torch.nn.Linear(d_model, hidden)
        self.w2 = torch.nn.Linear(hidden, n_max)

    def forward(self, h0):
        return self.w2(torch.tanh(self.w1(h0.float())))


def policy_labels(segments, n_max):
    """SFT label of the Policy Head: the CoT segment count clipped to 1..N_max, as a class
    index (N - 1)."""
    return segments.clamp(1, n_max) - 1


class LatentOutputs(NamedTuple):
    """What `LatentLM.run` returns (Coconut's `Outputs`): policy logits (B, N_max), the N used
    (B,), latent states (B, max N, D) with states[:, t-1] = h_t, and the KV stepper after the
    last latent slot (`<e>` and the answer, or the beam search, continue on it)."""
    policy_logits: torch.Tensor
    n: torch.Tensor
    states: torch.Tensor
    stepper: KVStepper


class LatentLM(WrappedLM):
    """The backbone plus the Policy Head; saved as the backbone's folder + policy_head.pt. Its
    settings have no defaults here: methods/configs/lasar.yaml holds them (n_max,
    policy_hidden, stage2.detach_policy_input)."""
    extra_attr, extra_file = "policy_head", "policy_head.pt"

    def __init__(self, lm, tok, *, n_max, policy_hidden, detach_policy_input):
        super().__init__()
        self.lm = lm
        self.policy_head = PolicyHead(lm.config.hidden_size, policy_hidden, n_max)
        self.n_max = n_max
        self.detach_policy_input = detach_policy_input
        self.start_id, self.end_id = tok.convert_tokens_to_ids([START, END])
        if tok.unk_token_id is not None and tok.unk_token_id in (self.start_id, self.end_id):
            raise ValueError("latent tokens missing from the tokenizer; call add_latent_tokens")

    # --- the loop ------------------------------------------------------------------------
    def encode(self, batch):
        """Prompt forward ([head | left-padded rows ending in <s>]). -> (h_0 (B, D), stepper)."""
        out, cache, mask, pos = run_rows(self.lm, self.lm.config, batch, keep=1, hidden=True)
        return out.hidden_states[-1][:, -1], KVStepper(self.lm, cache, mask, pos[:, -1] + 1)

    def policy_logits(self, h0, detach=None):
        """pi's logits from h_0; `detach` (default: the model's `detach_policy_input`) stops
        the head's loss from reaching the LM through h_0."""
        detach = self.detach_policy_input if detach is None else detach
        return self.policy_head(h0.detach() if detach else h0)

    def choose_n(self, logits, mode="argmax", force_n=None, generator=None):
        """N per sample (B,) in 1..N_max: forced, the head's argmax (SFT, default inference) or
        a sample from it (RL)."""
        B = logits.shape[0]
        if force_n is not None:
            if not 1 <= force_n <= self.n_max:
                raise ValueError(f"force_n must be in 1..{self.n_max}, got {force_n}")
            return torch.full((B,), force_n, dtype=torch.long, device=logits.device)
        if mode == "argmax":
            return logits.argmax(-1) + 1
        if mode == "sample":
            return torch.multinomial(logits.float().softmax(-1), 1, generator=generator)[:, 0] + 1
        raise ValueError(f"unknown N mode '{mode}'; choose argmax or sample")

    @staticmethod
    def latent_loop(stepper, h0, n):
        """Eq. 3 on the cache: slot t (1..max n) takes h_{t-1} as its input embedding.
        Slots t > n_b are masked (Appendix E.1). -> states (B, max n, D), states[:, t-1] = h_t."""
        h, states = h0, []
        for t in range(1, int(n.max()) + 1):
            out = stepper.forward(inputs_embeds=h.to(stepper.model.dtype), attend=n >= t)
            h = out.hidden_states[-1][:, -1]
            states.append(h)
        return torch.stack(states, 1)                                     # (B, maxN, D)

    def end_logp(self, stepper):
        """Feed <e>; -> log-probabilities of the first answer token (B, V)."""
        ids = torch.full((stepper.mask.shape[0],), self.end_id, dtype=torch.long,
                         device=stepper.mask.device)
        return torch.log_softmax(stepper.forward(input_ids=ids).logits[:, -1].float(), -1)

    def answer_logits(self, stepper, answers):
        """Feed <e> + answers[:, :-1]; -> logits predicting every answer token (B, A, V)."""
        e = answers.new_full((answers.shape[0], 1), self.end_id)
        return stepper.extend(torch.cat([e, answers[:, :-1]], 1)).logits

    def run(self, batch, n_mode="argmax", force_n=None, generator=None, n=None,
            detach_policy_input=None):
        """Prompt + Policy Head + latent loop (N given, or chosen by `choose_n`);
        `detach_policy_input` overrides the model's for the head's logits. -> LatentOutputs."""
        h0, stepper = self.encode(batch)
        logits = self.policy_logits(h0, detach_policy_input)
        if n is None:
            n = self.choose_n(logits, n_mode, force_n, generator)
        states = self.latent_loop(stepper, h0, n)
        return LatentOutputs(logits, n, states, stepper)


def last_states(states, n):
    """h_N of every sample: states (B, T, D), n (B,) -> (B, D)."""
    return states[torch.arange(len(n), device=n.device), n - 1]


# --- alignment (Eq. 4; Table 2 variants) ---------------------------------------------------
def bidir_kl(a, b):
    """D_KL^bidir(a, b) = (KL(sm(a) || sm(b)) + KL(sm(b) || sm(a))) / 2 over the last (hidden)
    dimension (Eq. 4). -> (...,)"""
    la, lb = F.log_softmax(a.float(), -1), F.log_softmax(b.float(), -1)
    pa, pb = la.exp(), lb.exp()
    return 0.5 * ((pa * (la - lb)).sum(-1) + (pb * (lb - la)).sum(-1))


def cosine_distance(a, b):
    return 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)


def mse(a, b):
    return ((a.float() - b.float()) ** 2).mean(-1)


ALIGNMENTS = {"kl": bidir_kl, "cosine": cosine_distance, "mse": mse, "none": None}


def stepwise_alignment(states, n, anchors, n_segments, dist):
    """Eq. 4, per sample: (1/N) sum_{t<=N} D(h_t, h_t^cot). Samples whose N exceeds their
    segment count are left out (Appendix E.3, boundary safety). states (B, T, D); anchors
    (B, S, D) segment anchors; n, n_segments (B,). -> (per-sample loss (B,), kept (B,) bool)."""
    kept = n <= n_segments
    w = min(states.shape[1], anchors.shape[1])     # slots past every anchor are never aligned
    d = dist(states[:, :w], anchors[:, :w].to(states.device))             # (B, w)
    steps = torch.arange(1, w + 1, device=n.device)[None]
    valid = (steps <= n[:, None]) & kept[:, None]                         # valid_mask (E.1 #5)
    per = (d * valid).sum(1) / n.clamp_min(1)
    return torch.where(kept, per, torch.zeros_like(per)), kept
