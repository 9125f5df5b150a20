"""Decoding helpers every generative method shares: the catalog as the beam search sees it, and
batches of prompts of similar length (PROTOCOL 4)."""
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.protocol.beam import SidTrie, recommend

from .forward import collate
from .tokenizer import sid_token_table


@dataclass
class Catalog:
    """trie: the SID trie (benchmark.protocol.beam.SidTrie); sid_ids (levels, codes): the
    vocabulary id of each code; item_tokens (I, levels + 1): each item's SID tokens then eos
    (the answer a candidate item stands for)."""
    trie: SidTrie
    sid_ids: torch.Tensor
    item_tokens: torch.Tensor

    @classmethod
    def build(cls, ctx, tok, device):
        s = ctx.config.sids
        codes = ctx.sids().codes
        trie = SidTrie(codes, s.codes).to(device)
        sid_ids = sid_token_table(tok, s.levels, s.codes, device)
        items = torch.cat([sid_ids[torch.arange(s.levels, device=device),
                                   torch.as_tensor(codes, device=device)],
                           torch.full((len(codes), 1), tok.eos_token_id, device=device)], 1)
        return cls(trie, sid_ids, items)


def prompt_batches(enc, pad_id, batch_size, device, sort=True):
    """Yield (idx, Batch) over the prompts of an encoded task, without answers; `sort` groups
    prompts of similar length (less padding). idx: the prompts' positions in `enc`."""
    order = (np.argsort([len(s) for s in enc.suffixes], kind="stable") if sort
             else np.arange(len(enc)))
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        yield idx, collate(enc, idx, pad_id, with_answers=False).to(device)


@torch.no_grad()
def beam_rank(model, enc, pad_id, catalog, width, batch_size, device, progress=None, sort=True):
    """Top-`width` items of the trie-constrained beam search for every prompt of `enc`.
    -> (n, width) int64."""
    model = model.to(device).eval()
    out = np.empty((len(enc), width), dtype=np.int64)
    for idx, b in prompt_batches(enc, pad_id, batch_size, device, sort):
        out[idx] = recommend(model, b.ids, b.mask, catalog.trie, catalog.sid_ids, width=width,
                             k=width, head=b.head).items.cpu().numpy()
        if progress is not None:
            progress.update(len(idx))
    return out
