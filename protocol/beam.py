"""Trie-constrained beam search over semantic IDs (PROTOCOL section 4; paper Appendix E.6.1).

One implementation for every generative method. The catalog's SIDs are held as a trie of
dense tensors, so the allowed next codes of every beam come from one indexing operation
(`children[level][node]`), never from a Python loop over beams. Beams of all prompts advance
together on one KV cache. Scores are joint log-probabilities of the SID tokens, each token's
log-probability normalised over the whole vocabulary (as Hugging Face beam search does before
its logits processors mask), with no sampling, no top-k/top-p and no length penalty: nothing is
read from a checkpoint's generation config.

Model side: `encode_prompts` runs the (left-padded) prompts once and returns a `KVStepper`;
a method may run extra forward steps on the stepper's cache before the first SID token (LASAR's
latent loop) through the `prefix_hook` argument of `recommend`.
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch


class SidTrie:
    """children[l]: (nodes at level l, n_codes) int64 -> node at level l+1, or the item index at
    the last level; -1 where no catalog item continues the prefix. Level 0 has one node (root)."""

    def __init__(self, codes, n_codes):
        codes = np.asarray(codes, dtype=np.int64)                         # (I, M)
        n_items, M = codes.shape
        if len({tuple(r) for r in codes.tolist()}) != n_items:
            raise ValueError("SIDs must be unique to build a trie")
        self.n_codes, self.levels, self.n_items = n_codes, M, n_items
        self.children = []
        node, n_nodes = np.zeros(n_items, dtype=np.int64), 1
        for level in range(M):
            if level < M - 1:
                uniq, child = np.unique(node * n_codes + codes[:, level], return_inverse=True)
            else:
                uniq, child = None, np.arange(n_items)
            table = np.full((n_nodes, n_codes), -1, dtype=np.int64)
            table[node, codes[:, level]] = child
            self.children.append(torch.from_numpy(table))
            if uniq is not None:
                node, n_nodes = child, len(uniq)

    def to(self, device):
        self.children = [c.to(device) for c in self.children]
        return self


@dataclass
class BeamResult:
    items: torch.Tensor     # (B, K) item indices, best first; -1 where fewer than K items exist
    scores: torch.Tensor    # (B, K) joint log-probability of the item's SID tokens


def constrained_beam_search(first_logp, step, trie, sid_token_ids, width):
    """Beam search over the trie.

    first_logp: (B, V) log-probabilities at the first SID position.
    step(tokens, parent) -> (B*W, V) log-probabilities of the next token, where tokens (B*W,)
        are the vocabulary ids just chosen and parent (B*W,) the flat index of the row each
        beam continues (the stepper reorders its cache by it; None on the first step, whose
        rows are the prompts repeated W times).
    sid_token_ids: (M, n_codes) vocabulary id of code c at level l.
    """
    B = first_logp.shape[0]
    C, W = trie.n_codes, width
    neg_inf = first_logp.new_tensor(float("-inf"))
    # level 0: every prompt starts at the root
    logp = first_logp[:, sid_token_ids[0]]                                 # (B, C)
    logp = torch.where(trie.children[0][0][None] >= 0, logp, neg_inf)
    k0 = min(W, C)
    score, code = logp.topk(k0, dim=1)                                     # (B, k0)
    if k0 < W:                                                             # pad to W beams
        score = torch.cat([score, score.new_full((B, W - k0), float("-inf"))], 1)
        code = torch.cat([code, code.new_zeros((B, W - k0))], 1)
    node = trie.children[0][0][code]                                       # (B, W)
    parent = None                     # row b*W + w already holds prompt b: nothing to reorder
    for level in range(1, trie.levels):
        tokens = sid_token_ids[level - 1][code.reshape(-1)]
        logp = step(tokens, parent)[:, sid_token_ids[level]]               # (B*W, C)
        flat_node = node.reshape(-1).clamp_min(0)
        allowed = (trie.children[level][flat_node] >= 0) & (node.reshape(-1, 1) >= 0)
        cand = torch.where(allowed, score.reshape(-1, 1) + logp, neg_inf)  # (B*W, C)
        score, idx = cand.reshape(B, W * C).topk(W, dim=1)                 # (B, W)
        beam, code = idx // C, idx % C
        prev = node.gather(1, beam).clamp_min(0)
        node = torch.where(score > neg_inf, trie.children[level][prev, code], -1)
        parent = (beam + torch.arange(B, device=beam.device)[:, None] * W).reshape(-1)
    items = torch.where(score > neg_inf, node, -1)
    return BeamResult(items=items, scores=score)


def _prefix_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                      beam_prefix=None, **kwargs):
    """Attention of B*W beam rows over their prompt's KV (shared, never copied per beam) and
    over their own beam tokens' KV, as one softmax. Registered as the attention implementation
    'beam_prefix'; used only for the beam steps (KVStepper after expand).
    query (B*W, H, q, d); key/value: the beam tokens' cache (B*W, Hkv, t, d)."""
    kv, pmask = beam_prefix                       # per-layer (B, Hkv, T, d); (B, T) bool
    Kp, Vp = kv[module.layer_idx]
    B, Hkv, T, d = Kp.shape
    R, H, q, _ = query.shape
    W, g, t = R // B, H // Hkv, key.shape[2]
    qv = query.view(B, W, Hkv, g, q, d)
    sp = torch.einsum("bwhgqd,bhtd->bwhgqt", qv, Kp) * scaling            # (B,W,Hkv,g,q,T)
    sp = sp.masked_fill(~pmask[:, None, None, None, None, :], float("-inf"))
    kb, vb = key.view(B, W, Hkv, t, d), value.view(B, W, Hkv, t, d)
    sb = torch.einsum("bwhgqd,bwhtd->bwhgqt", qv, kb) * scaling            # (B,W,Hkv,g,q,t)
    if q > 1:                                     # causal among the new beam tokens
        causal = torch.ones(q, t, dtype=torch.bool, device=query.device).tril(t - q)
        sb = sb.masked_fill(~causal, float("-inf"))
    p = torch.cat([sp, sb], -1).float().softmax(-1).to(query.dtype)
    out = (torch.einsum("bwhgqt,bhtd->bwhgqd", p[..., :T], Vp)
           + torch.einsum("bwhgqt,bwhtd->bwhgqd", p[..., T:], vb))
    return out.reshape(R, H, q, d).transpose(1, 2), None                   # (R, q, H, d)


_REGISTERED = False


def _register_prefix_attention():
    global _REGISTERED
    if not _REGISTERED:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface
        AttentionInterface.register("beam_prefix", _prefix_attention)
        AttentionMaskInterface.register("beam_prefix", lambda *a, **k: None)  # masks are ours
        _REGISTERED = True


class _attn_impl:
    """Temporarily switch a model's attention implementation."""

    def __init__(self, model, name):
        self.config, self.name = model.config, name

    def __enter__(self):
        self.old = self.config._attn_implementation
        self.config._attn_implementation = self.name

    def __exit__(self, *exc):
        self.config._attn_implementation = self.old


class KVStepper:
    """Advances a causal LM one token at a time on a KV cache, for B prompt rows, then (after
    `expand(W)`) for B*W beam rows.

    Before expand: one cache of B rows; `forward` may add positions (LASAR's latent steps), with
    `attend` masking a row's new position out of later attention.
    After expand: the prompt cache stays at B rows and is read by every beam through the
    'beam_prefix' attention; only the beams' own tokens (at most M - 1) live in a B*W-row
    cache, so reordering beams copies a few tokens instead of the whole prompt cache."""

    def __init__(self, model, cache, attention_mask, next_pos):
        self.model, self.cache = model, cache
        self.mask, self.next_pos = attention_mask, next_pos                # (R, T), (R,)
        self.prefix = None

    def expand(self, width):
        from transformers import DynamicCache
        _register_prefix_attention()
        kv = [(layer.keys, layer.values) for layer in self.cache.layers]
        self.prefix = (kv, self.mask.bool())
        self.cache = DynamicCache(config=self.model.config)
        self.next_pos = self.next_pos.repeat_interleave(width, 0)

    def forward(self, inputs_embeds=None, input_ids=None, parent=None, attend=None):
        """One position for every row; `parent` reorders rows first, `attend` (R,) bool masks
        the new position out of later attention (before expand only). -> model output."""
        if self.prefix is not None:
            return self._beam_forward(input_ids, parent)
        if parent is not None:
            self.cache.reorder_cache(parent)
            self.mask, self.next_pos = self.mask[parent], self.next_pos[parent]
        new = (self.mask.new_ones((len(self.mask), 1)) if attend is None
               else attend[:, None].to(self.mask.dtype))
        self.mask = torch.cat([self.mask, new], 1)
        out = self.model(input_ids=None if input_ids is None else input_ids[:, None],
                         inputs_embeds=None if inputs_embeds is None else inputs_embeds[:, None],
                         past_key_values=self.cache, attention_mask=self.mask,
                         position_ids=self.next_pos[:, None], use_cache=True,
                         output_hidden_states=inputs_embeds is not None)
        self.next_pos = self.next_pos + 1 if attend is None else self.next_pos + attend.long()
        return out

    def extend(self, input_ids):
        """q positions for every row at once, all attended (before expand): LASAR's `<e>` and
        answer tokens in training. input_ids (R, q). -> model output (logits (R, q, V))."""
        R, q = input_ids.shape
        self.mask = torch.cat([self.mask, self.mask.new_ones((R, q))], 1)
        pos = self.next_pos[:, None] + torch.arange(q, device=input_ids.device)
        out = self.model(input_ids=input_ids, past_key_values=self.cache, attention_mask=self.mask,
                         position_ids=pos, use_cache=True)
        self.next_pos = self.next_pos + q
        return out

    def repeat_rows(self, times):
        """Repeat every row `times` times (before expand): G candidates of one prompt."""
        self.cache.batch_repeat_interleave(times)
        self.mask = self.mask.repeat_interleave(times, 0)
        self.next_pos = self.next_pos.repeat_interleave(times, 0)

    def _beam_forward(self, input_ids, parent):
        if parent is not None:
            if self.cache.get_seq_length() > 0:
                self.cache.reorder_cache(parent)
            self.next_pos = self.next_pos[parent]
        with _attn_impl(self.model, "beam_prefix"):
            out = self.model(input_ids=input_ids[:, None], past_key_values=self.cache,
                             position_ids=self.next_pos[:, None], use_cache=True,
                             beam_prefix=self.prefix)
        self.next_pos = self.next_pos + 1
        return out

    def __call__(self, tokens, parent):
        return torch.log_softmax(self.forward(input_ids=tokens, parent=parent).logits[:, -1]
                                 .float(), -1)


def head_cache(model, config, head, rows):
    """KV cache of `head` (H,) ids, the prompt start shared by every row, run once at batch
    size 1 and repeated for `rows` rows. -> (cache, H)."""
    cache, H, _ = head_cache_states(model, config, head, rows, hidden=False)
    return cache, H


def head_cache_states(model, config, head, rows, hidden=True):
    """head_cache, and the head's last-layer hidden states (1, H, D) when `hidden` (None
    otherwise, or when there is no head). -> (cache, H, states)."""
    from transformers import DynamicCache
    cache = DynamicCache(config=config)
    if head is None or len(head) == 0:
        return cache, 0, None
    out = model(input_ids=head[None], past_key_values=cache, use_cache=True, logits_to_keep=1,
                output_hidden_states=hidden)
    cache.batch_repeat_interleave(rows)
    return cache, len(head), out.hidden_states[-1] if hidden else None


class PromptStates(NamedTuple):
    """Every position's last-layer hidden state of [head | left-padded rows]: states
    (B, H + S, D), mask (B, H + S) (1 on real tokens) and position ids (B, H + S)."""
    states: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor


class PromptForward(NamedTuple):
    """What `encode_prompts` returns: log-probs at the prompts' last position (B, V), the
    last-layer hidden state there (B, D), every position's (PromptStates, hidden="all") or
    None, and the stepper holding their KV cache."""
    first_logp: torch.Tensor
    hidden: object
    stepper: "KVStepper"


def encode_prompts(model, input_ids, attention_mask, head=None, hidden=False):
    """Prompt forward on [head | left-padded rows]. `hidden`: False, True (the last position's
    last-layer state) or "all" (PromptStates: LatentR3's thought attention reads them).
    -> PromptForward."""
    B = input_ids.shape[0]
    cache, H, head_states = head_cache_states(model, model.config, head, B,
                                              hidden=hidden == "all")
    mask = torch.cat([attention_mask.new_ones((B, H)), attention_mask], 1)
    pos = H + (attention_mask.cumsum(1) - 1).clamp_min(0)
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=pos,
                past_key_values=cache, use_cache=True, output_hidden_states=bool(hidden),
                logits_to_keep=1)
    stepper = KVStepper(model, out.past_key_values, mask, pos[:, -1] + 1)
    states = None
    if hidden == "all":
        rows = out.hidden_states[-1]                                       # (B, S, D)
        states = (rows if head_states is None else
                  torch.cat([head_states.expand(B, -1, -1), rows], 1))
        positions = torch.cat([torch.arange(H, device=pos.device).expand(B, H), pos], 1)
        states = PromptStates(states, mask, positions)
    elif hidden:
        states = out.hidden_states[-1][:, -1]
    return PromptForward(torch.log_softmax(out.logits[:, -1].float(), -1), states, stepper)


@torch.no_grad()
def recommend(model, input_ids, attention_mask, trie, sid_token_ids, width=50, k=50,
              prefix_hook=None, head=None, prefix_states="last"):
    """Top-k items per prompt by joint SID log-probability. `head`: ids shared by every prompt
    in front of the (left-padded) rows. prefix_hook(stepper, hidden) may run extra positions on
    the cache (LASAR's latent loop, LatentR3's thought) and returns the log-probabilities at
    the first SID position; `hidden` is the prompts' last-layer state at their last position
    (`prefix_states` "last") or every position's (PromptStates, "all").
    -> BeamResult with (B, k) items and scores."""
    if prefix_states not in ("last", "all"):
        raise ValueError(f"prefix_states must be 'last' or 'all', got {prefix_states!r}")
    first_logp, hidden, stepper = encode_prompts(
        model, input_ids, attention_mask, head,
        hidden=False if prefix_hook is None else (True if prefix_states == "last" else "all"))
    if prefix_hook is not None:
        first_logp = prefix_hook(stepper, hidden)
    stepper.expand(width)
    res = constrained_beam_search(first_logp, stepper, trie, sid_token_ids, width)
    return BeamResult(res.items[:, :k], res.scores[:, :k])
