"""What the synthetic benchmarks (`bench beam`, `bench sft`) share: a random catalog of 4-level
SIDs, the tokenizer, the shared prompt over random 20-item histories (built by
methods.lm.tasks.Codec and methods.lm.forward.collate, exactly as the generative methods build
theirs), and a randomly initialised model of a preset's shape (PRESETS in __init__.py here)."""
from typing import NamedTuple

import numpy as np
import torch

from . import PRESETS

LEVELS, CODES, HISTORY = 4, 256, 20


class Prompts(NamedTuple):
    tok: object               # the tokenizer (SID tokens included)
    codes: np.ndarray         # (I, LEVELS) unique SIDs of the catalog
    sid_ids: torch.Tensor     # (LEVELS, CODES) vocabulary id of each code
    examples: object          # recdata Examples: histories (n, 20) and targets (n,)
    batch: object             # methods.lm.forward.Batch of every example


def random_model(preset, vocab, device, dtype, seed=0):
    """A randomly initialised causal LM of `preset`'s shape (Qwen3 or Llama, tied embeddings),
    its vocabulary max(vocab, the preset's)."""
    import transformers
    p = PRESETS[preset]
    cls = {"qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
           "llama": ("LlamaConfig", "LlamaForCausalLM")}[p.arch]
    torch.manual_seed(seed)
    cfg = getattr(transformers, cls[0])(
        vocab_size=max(vocab, p.vocab or 0), hidden_size=p.hidden,
        intermediate_size=p.intermediate, num_hidden_layers=p.layers,
        num_attention_heads=p.heads, num_key_value_heads=p.kv_heads, head_dim=p.head_dim,
        max_position_embeddings=1024, pad_token_id=0, tie_word_embeddings=True)
    return getattr(transformers, cls[1])(cfg).to(device=device, dtype=dtype)


def tokenizer(kind):
    """bpe: the offline BPE of `random` backbones, trained on the prompt templates only (vocab
    1,000); smollm2: SmolLM2's tokenizer. Both with the 1,024 SID tokens."""
    if kind == "smollm2":
        from ..backbone import smollm2_tokenizer
        return smollm2_tokenizer(LEVELS, CODES)
    from ..tokenizer import build_tokenizer
    return build_tokenizer([], vocab_size=1000, levels=LEVELS, n_codes=CODES)


def catalog(rng, n_items):
    """(n_items, LEVELS) distinct random SIDs."""
    codes = np.unique(rng.integers(0, CODES, (int(n_items * 1.05), LEVELS)), axis=0)
    return codes[rng.permutation(len(codes))[:n_items]]


def prompts(n, n_items, tokenizer_kind="bpe", with_answers=False, seed=0):
    """`n` shared prompts over random 20-item histories of a random `n_items` catalog; with
    answers: each a random target's SID tokens + eos (the SFT rows). -> Prompts."""
    from recdata.split import Examples
    from ..forward import collate
    from ..tasks import Codec
    from ..tokenizer import sid_token_table
    from protocol.sids import SidTable
    rng = np.random.default_rng(seed)
    codes = catalog(rng, n_items)
    tok = tokenizer(tokenizer_kind)
    sid_ids = sid_token_table(tok, LEVELS, CODES)
    table = SidTable([str(i) for i in range(len(codes))], codes, 0, 0.0, "bench")
    codec = Codec(tok, table, [""] * len(codes))
    hist = rng.integers(0, len(codes), (n, HISTORY))
    ex = Examples(np.arange(n), rng.integers(0, len(codes), n), hist, np.full(n, HISTORY))
    # (histories drawn before targets: the prompts of `bench beam` are those it always had)
    batch = collate(codec.seqrec(ex, with_answers=with_answers), np.arange(n),
                    tok.pad_token_id, with_answers=with_answers)
    return Prompts(tok, codes, sid_ids, ex, batch)
