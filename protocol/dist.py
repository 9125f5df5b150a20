"""Which process am I, and the few collectives every stage shares (under `accelerate launch`
or torchrun several processes run the same steps; only the main one writes results).

Work is split by *whole batches*: `my_batches(n)` gives this process batches rank, rank + N,
...; each process computes its batches exactly as one process would, and `gather_rows`
puts the rows back in their original order on every process. So a sharded stage gives
byte-identical results to one process (tests/test_distributed.py).

Everything here is a no-op in a single process; torch is imported lazily (the layers above
that must not load torch import this module).
"""
import os


def process_index():
    """0 in the main process (or when not launched in several processes)."""
    return int(os.environ.get("RANK", "0"))


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process():
    """False in the extra processes of `accelerate launch`/torchrun: they help and write
    nothing."""
    return process_index() == 0


def distributed():
    """True when several processes run together."""
    return world_size() > 1


def init(device="cpu", timeout_s=None):
    """Make sure the process group exists (accelerate's PartialState: gloo on the CPU, nccl
    on GPUs); a no-op in one process. Stages call it before their first collective, so a
    stage whose training was reused from the cache can still shard its decoding. The first
    call sets the group's timeout (`timeout_s`, settings `dist_timeout_s`): a collective that
    waits longer, for a rank that died or stalled, raises in every rank."""
    if not distributed():
        return
    import torch.distributed as td
    if td.is_available() and td.is_initialized():
        return
    from datetime import timedelta

    from accelerate import PartialState
    PartialState(cpu=device == "cpu",
                 **({"timeout": timedelta(seconds=timeout_s)} if timeout_s else {}))


def barrier():
    """Wait for every process (a no-op in a single process). The process group must exist
    (`init`): without it the processes would not wait for each other."""
    if distributed():
        import torch.distributed as td
        if not (td.is_available() and td.is_initialized()):
            raise RuntimeError("dist.barrier before dist.init: no process group to wait on")
        td.barrier()


def clock():
    """time.perf_counter() once every process has come here (barrier): timings taken with it
    are the wall time of the whole group, not of one process."""
    import time
    barrier()
    return time.perf_counter()


def my_batches(n_batches):
    """The batch numbers (of 0..n_batches-1) this process computes: rank, rank + N, ..."""
    return range(process_index(), n_batches, world_size())


def gather_object(obj):
    """[obj of process 0, obj of process 1, ...] on every process ([obj] in one)."""
    if not distributed():
        return [obj]
    import torch.distributed as td
    out = [None] * world_size()
    td.all_gather_object(out, obj)
    return out


def gather_rows(parts, n):
    """Rows computed in shards put back in order on every process. parts: this process's
    [(row indices, {name: array of those rows})]; n: the total row count. -> {name: array
    (n, ...)}; raises when a row is missing or computed twice."""
    import numpy as np
    chunks = [c for p in gather_object(parts) for c in p]
    if not chunks:
        return {}
    seen = np.zeros(n, dtype=np.int64)
    out = {}
    for idx, cols in chunks:
        idx = np.asarray(idx)
        seen[idx] += 1
        for k, v in cols.items():
            v = np.asarray(v)
            if k not in out:
                out[k] = np.empty((n,) + v.shape[1:], dtype=v.dtype)
            out[k][idx] = v
    if not (seen == 1).all():
        bad = int(np.flatnonzero(seen != 1)[0])
        raise RuntimeError(f"sharded rows: row {bad} computed {int(seen[bad])} times "
                           f"across {world_size()} processes")
    return out


def all_reduce_sum(tensor):
    """Sum a tensor over every process, in place (a no-op in one). -> tensor."""
    if distributed():
        import torch.distributed as td
        td.all_reduce(tensor, op=td.ReduceOp.SUM)
    return tensor


def all_reduce_grads(params):
    """Sum the gradients of `params` over every process (one flat buffer per dtype and
    device). A process's loss is its share of the global batch's loss, so the sum is the
    gradient of the global batch, as one process would compute it."""
    if not distributed():
        return
    import torch
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors
    groups = {}
    for p in params:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in groups.values():
        flat = all_reduce_sum(_flatten_dense_tensors(grads))
        for g, r in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(r)


def my_rows(n):
    """This process's part of one batch of n rows cut into contiguous parts as equal as
    possible (sizes differ by at most one; a part is empty when n < world_size()). -> slice
    (slice(0, n) in one process). RL splits each optimizer step's global batch so."""
    p, w = process_index(), world_size()
    return slice(p * n // w, (p + 1) * n // w)


def sum_over_processes(values):
    """{name: number} summed over every process; a name missing on a process counts 0. Every
    process adds the same floats in the same order (process 0 first), so all get the same
    result. -> {name: float} ({name: float(value)} in one process)."""
    out = {}
    for part in gather_object(values):
        for k, v in part.items():
            out[k] = out.get(k, 0.0) + float(v)
    return out
