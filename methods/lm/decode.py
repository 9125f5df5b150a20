"""Decoding helpers every generative method shares: the catalog as the beam search sees it,
batches of prompts of similar length (PROTOCOL 4), and their sharing out among the processes of
a distributed run (`accelerate launch`): each process computes whole batches of the global
batch order (protocol.dist.my_batches) and the rows are gathered back in order, so
the result is the one-process result (sharded_rows, sharded_decode)."""
from dataclasses import dataclass

import numpy as np
import torch

from protocol import dist
from protocol.beam import SidTrie, recommend

from .forward import collate
from .tokenizer import sid_token_table


@dataclass
class Catalog:
    """trie: the SID trie (protocol.beam.SidTrie); sid_ids (levels, codes): the
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


def batch_order(lengths, batch_size, sort=True):
    """The global batches of a decoding stage, the same in every process: positions 0..n-1,
    sorted by `lengths` when `sort` (prompts of similar length: less padding), cut into
    batches of `batch_size`. -> list of index arrays."""
    order = (np.argsort(lengths, kind="stable") if sort else np.arange(len(lengths)))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def sharded_rows(batches, step, n, device, progress=None):
    """Run `step(number, idx) -> {name: tensor or array (len(idx), ...)}` on this process's
    batches (dist.my_batches: numbers rank, rank + N, ... of the global list `batches`; all of
    them in one process) and gather the rows back in order on every process (dist.gather_rows:
    none dropped or computed twice). Each batch is computed as one process computes it, so
    the result is byte-identical to one process's at the same thread count
    (tests/test_distributed.py). The main process's `progress` moves by its batches' rows
    times the process count (the group's progress, roughly). -> {name: (n, ...) array}."""
    if not n:
        raise ValueError("sharded_rows: nothing to compute")
    dist.init(device)                      # the group exists also when training was reused
    parts = []
    for number in dist.my_batches(len(batches)):
        idx = batches[number]
        cols = step(number, idx)
        parts.append((idx, {k: v.cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
                            for k, v in cols.items()}))
        if progress is not None:
            progress.update(len(idx) * dist.world_size())
    return dist.gather_rows(parts, n)


def fingerprint(model):
    """The sum of every parameter (float64): equal in processes that hold the same weights."""
    return torch.stack([p.detach().sum(dtype=torch.float64)
                        for p in model.parameters()]).sum().item()


def sharded_decode(model, enc, pad_id, batch_size, device, step, progress=None, sort=True):
    """Decode the prompts of an encoded task (without answers) in `batch_order`, the batches
    shared out among the processes (sharded_rows): `step(number, Batch) -> {name: (B, ...)}`.
    Under several processes it first checks that every process decodes as many prompts with
    the same `model` weights (a stage that ran in one process only would otherwise mix two
    models' rows, or pair one decoding's collectives with another's). -> {name: (n, ...)}."""
    dist.init(device)
    if dist.distributed():
        views = dist.gather_object((len(enc), fingerprint(model)))
        if any(v != views[0] for v in views):
            raise RuntimeError("sharded decoding: the processes disagree on (prompts, weights): "
                               + ", ".join(f"process {i} {v}" for i, v in enumerate(views)))
    batches = batch_order([len(s) for s in enc.suffixes], batch_size, sort)
    return sharded_rows(
        batches, lambda number, idx: step(number, collate(enc, idx, pad_id, with_answers=False)
                                          .to(device)), len(enc), device, progress)


@torch.no_grad()
def beam_rank(model, enc, pad_id, catalog, width, batch_size, device, progress=None, sort=True):
    """Top-`width` items of the trie-constrained beam search for every prompt of `enc`, its
    batches shared out among the processes of a distributed run (sharded_decode).
    -> (n, width) int64."""
    model = model.to(device).eval()

    def step(number, b):
        return {"items": recommend(model, b.ids, b.mask, catalog.trie, catalog.sid_ids,
                                   width=width, k=width, head=b.head).items}
    return sharded_decode(model, enc, pad_id, batch_size, device, step, progress,
                          sort)["items"]
