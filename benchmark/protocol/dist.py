"""Which process am I: the helpers every layer may ask (under `accelerate launch` or torchrun
several processes run the same steps; only the main one writes results)."""
import os


def process_index():
    """0 in the main process (or when not launched in several processes)."""
    return int(os.environ.get("RANK", "0"))


def world_size():
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process():
    """False in the extra processes of `accelerate launch`/torchrun: they help training and
    write nothing."""
    return process_index() == 0


def barrier():
    """Wait for every process (a no-op in a single process)."""
    if world_size() > 1:
        import torch.distributed as td
        if td.is_available() and td.is_initialized():
            td.barrier()
