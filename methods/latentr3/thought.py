"""LatentR3's latent thought (Zhang et al., 2025; ../shared/REFERENCES.md "LatentR3": the
reference code's `SelfAttentionLayer` and `LatentModel.generate_embs`).

Layout: [prompt] <thought>_1 .. <thought>_T [answer]. A single-head attention layer of its own
(Q, K, V linear with bias, no output projection, no norm, scale 1/sqrt(d), rotary positions with
base 1000 over the full width d) reads the LM's last-layer hidden states (after the final norm):
the query is the position just before the thought, the keys and values are every position up to
it (that one included), padding masked. Its (B, d) output is the thought's input embedding; the
answer is decoded after it. The reference has T = 1; with T > 1 each next thought reads the
states up to the previous thought's position, one after another.

The reference runs the whole sequence twice (once for the states, once with the thought's
embedding in place). Here the first pass is the prompt forward, whose KV cache the thought and
the answer (training) or the beam search (decoding, through its prefix hook) continue on: the
prompt's states do not depend on the thought (causal attention), so both compute the same
function (tests/test_latentr3.py checks it against the two full passes). The thought token
itself never enters the model, as LASAR's `<t>`; it is added to the tokenizer as in the
reference, so the vocabulary (and the answer's softmax) is the reference's.
"""
import math
import torch

from protocol.beam import PromptStates, encode_prompts

from ..lm.wrapped import WrappedLM

THOUGHT = "<|thought|>"


def add_thought_token(model, tok):
    """Add <|thought|> to the tokenizer and the embedding table (new row at the mean)."""
    if THOUGHT not in tok.get_vocab():
        tok.add_tokens([THOUGHT], special_tokens=True)
        from ..lm.backbone import resize_vocab
        resize_vocab(model, len(tok))
    return model


def rotate(x, pos, base=1000.0):
    """Rotary position embedding over the full last dimension (the reference's VanillaRoPE and
    HF's rotate_half convention). x (..., d), pos (...) -> (..., d)."""
    d = x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    freqs = pos.float()[..., None] * inv                                  # (..., d/2)
    emb = torch.cat([freqs, freqs], -1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


class ThoughtAttention(torch.nn.Module):
    """One head over the last-layer states; the query at the last position. forward ->
    (B, d)."""

    def __init__(self, d_model, rope_base=1000.0):
        super().__init__()
        self.query = torch.nn.Linear(d_model, d_model)
        self.key = torch.nn.Linear(d_model, d_model)
        self.value = torch.nn.Linear(d_model, d_model)
        self.rope_base = rope_base

    def forward(self, mem):
        """mem: PromptStates (B, T, d) whose last position is the query's (always real:
        rows are left-padded)."""
        x = mem.states.to(self.query.weight.dtype)
        q = rotate(self.query(x[:, -1]), mem.positions[:, -1], self.rope_base)   # (B, d)
        k = rotate(self.key(x), mem.positions, self.rope_base)                   # (B, T, d)
        v = self.value(x)
        scores = torch.einsum("bd,btd->bt", q, k) / math.sqrt(x.shape[-1])
        scores = scores.float().masked_fill(mem.mask == 0, float("-inf"))
        return torch.einsum("bt,btd->bd", scores.softmax(-1).to(v.dtype), v)


def extend_states(mem, h, attend):
    """mem with one more position: state h (B, d) at the next position id."""
    pos = mem.positions[:, -1:] + 1
    return PromptStates(torch.cat([mem.states, h[:, None].to(mem.states.dtype)], 1),
                        torch.cat([mem.mask, attend[:, None].to(mem.mask.dtype)], 1),
                        torch.cat([mem.positions, pos], 1))


class ThoughtLM(WrappedLM):
    """The backbone plus the thought attention; saved as the backbone's folder +
    thought_attention.pt (sft.save_model / sft.load_weights)."""
    extra_attr, extra_file = "attention", "thought_attention.pt"

    def __init__(self, lm, n_thoughts=1):
        super().__init__()
        self.lm = lm
        self.attention = ThoughtAttention(lm.config.hidden_size)
        self.n_thoughts = n_thoughts

    def encode(self, batch):
        """Prompt forward on [head | left-padded rows]. -> (PromptStates, KVStepper, the
        prompts' own next-token log-probabilities (B, V): the answer's with `n_thoughts` 0)."""
        fwd = encode_prompts(self.lm, batch.ids, batch.mask, batch.head, hidden="all")
        return fwd.hidden, fwd.stepper, fwd.first_logp

    def think(self, stepper, mem, noise=None, prompt_logp=None):
        """The thoughts on the stepper's cache, one after another; thought t's embedding is the
        attention's output plus noise[:, t-1] (RL's exploration; None: the deterministic
        thought). With `n_thoughts` 0 (the studies' control: the same training, no thought)
        the answer follows the prompt. -> (log-probabilities of the first answer token (B, V),
        thoughts (B, T, d))."""
        if self.n_thoughts == 0:
            if prompt_logp is None:
                raise ValueError("no thought: pass the prompts' log-probabilities")
            return prompt_logp, prompt_logp.new_zeros((prompt_logp.shape[0], 0,
                                                       self.config.hidden_size))
        thoughts = []
        for t in range(self.n_thoughts):
            z = self.attention(mem)
            if noise is not None:
                z = z + noise[:, t].to(z.dtype)
            thoughts.append(z)
            out = stepper.forward(inputs_embeds=z.to(self.lm.dtype))
            if t + 1 < self.n_thoughts:
                mem = extend_states(mem, out.hidden_states[-1][:, -1],
                                    torch.ones_like(mem.mask[:, 0]))
        return torch.log_softmax(out.logits[:, -1].float(), -1), torch.stack(thoughts, 1)

    def answer_logps(self, batch, answers, noise=None, repeat=1, prompt_grad=True):
        """Log-probabilities of answer tokens after the thoughts, teacher-forced. answers
        (B * repeat, A): each prompt's rows repeated `repeat` times (RL's group of latents,
        row g of prompt b at b * repeat + g); noise (B * repeat, T, d) or None.
        `prompt_grad` false runs the prompt forward without a graph (RL: the LM is frozen).
        -> (B * repeat, A) token log-probabilities."""
        with torch.set_grad_enabled(prompt_grad and torch.is_grad_enabled()):
            mem, stepper, prompt_logp = self.encode(batch)
        if repeat > 1:
            stepper.repeat_rows(repeat)
            mem = PromptStates(*(t.repeat_interleave(repeat, 0) for t in mem))
            prompt_logp = prompt_logp.repeat_interleave(repeat, 0)
        first, _ = self.think(stepper, mem, noise, prompt_logp)
        lp0 = first.gather(1, answers[:, :1])
        if answers.shape[1] == 1:
            return lp0
        logits = stepper.extend(answers[:, :-1]).logits
        lp = torch.log_softmax(logits.float(), -1).gather(2, answers[:, 1:, None])[..., 0]
        return torch.cat([lp0, lp], 1)


class ThoughtSFT(torch.nn.Module):
    """Stage 1's objective (AnswerCE's contract): cross-entropy on the answer after the
    deterministic thought, the whole LM and the attention trained (with no thought the
    attention gets no gradient: `skips_parameters`, for DDP)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.skips_parameters = model.n_thoughts == 0

    def forward(self, batch):
        lp = self.model.answer_logps(batch, batch.labels)
        loss = -lp.sum()
        return loss, torch.tensor(lp.numel(), device=lp.device), loss.new_zeros(()), {}


def thought_hook(model, record=None):
    """The beam search's prefix hook (prefix_states "all"): the deterministic thoughts on the
    prompts' cache. `record` (a dict) gets the thoughts."""
    def hook(stepper, mem):
        first, z = model.think(stepper, mem)
        if record is not None:
            record["thoughts"] = z
        return first
    return hook


__all__ = ["THOUGHT", "add_thought_token", "rotate", "ThoughtAttention", "ThoughtLM",
           "ThoughtSFT", "thought_hook"]
