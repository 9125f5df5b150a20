"""What a stage cost: its wall time and peak memory (the process's resident set on Linux, and
on a GPU the peak memory torch allocated), measured around every artifact's build
(protocol/artifact.py records them in done.json's info as `measured`), so each run's report
sets them beside the plan's estimates (benchmark/estimate.py).

The resident-set peak (VmHWM) is the process's high-water mark; Linux resets it when "5" is
written to /proc/self/clear_refs, so a stage's peak is its own. Stages nest (an artifact built
inside another's build): an inner stage hands its peak up before it resets the mark, so an
outer stage's peak covers the inner ones. Where the mark cannot be reset, the peak is the
process's so far (`rss_reset` false).

Each stage starts by handing back what the stages before it freed (`release`): the C heap keeps
freed blocks smaller than its mmap threshold (most of a model's per-layer tensors), so on the
CPU a process that trained one model and dropped it held gigabytes it no longer used, which
other processes of the run could not have and which its next stage's `start_rss_mb` counted.
At Qwen3-0.6B's shape a LASAR study RL variant started at 13.6 GB without it and at 9.6 GB with
it; its peak (21.6 GB) is its own either way.
"""
import ctypes
import gc
import sys
import time
from contextlib import contextmanager

_open = []                       # the peaks of the stages being measured, outermost first


def _status_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rss_peak_mb():
    """The process's resident-set high-water mark in MiB (None off Linux)."""
    return _status_mb("VmHWM:")


def rss_mb():
    """The process's resident set now, in MiB (None off Linux)."""
    return _status_mb("VmRSS:")


def _reset_rss_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cuda():
    """torch.cuda when torch is loaded and a GPU is visible (measuring never imports torch)."""
    torch = sys.modules.get("torch")
    return torch.cuda if torch is not None and torch.cuda.is_available() else None


GC_ABOVE_MB = 2048      # a full gc.collect costs ~0.25 s with torch and transformers loaded:
                        # worth it where a dropped model can hold gigabytes, not in small runs


def release():
    """Hand back memory the process freed: return the C heap's free pages to the system
    (glibc's malloc_trim; nothing elsewhere), after collecting reference cycles when the
    process holds over GC_ABOVE_MB, and on a GPU torch's cached blocks."""
    if (rss_mb() or 0) > GC_ABOVE_MB:
        gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    cuda = _cuda()
    if cuda is not None:
        cuda.empty_cache()


@contextmanager
def measured():
    """Measure the block: yields a dict that holds, once the block ends, `seconds`,
    `peak_rss_mb`, `rss_reset`, `start_rss_mb` (what the process held when the block began:
    on the CPU a peak includes it) and, on a GPU, `peak_gpu_mb` (torch's max allocated)."""
    release()                                    # what earlier stages freed is not this one's
    cuda = _cuda()
    start = rss_mb()
    here = {"rss": 0.0, "gpu": 0.0}
    if _open:                                    # hand the outer stage what it reached so far
        _open[-1]["rss"] = max(_open[-1]["rss"], rss_peak_mb() or 0.0)
        if cuda is not None:
            _open[-1]["gpu"] = max(_open[-1]["gpu"], cuda.max_memory_allocated() / 2 ** 20)
    reset = _reset_rss_peak()
    if cuda is not None:
        cuda.reset_peak_memory_stats()
    _open.append(here)
    rec = {}
    t0 = time.perf_counter()
    try:
        yield rec
    finally:
        _open.pop()
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        here["rss"] = max(here["rss"], rss_peak_mb() or 0.0)
        rec["peak_rss_mb"] = round(here["rss"], 1)
        rec["rss_reset"] = reset
        if start is not None:
            rec["start_rss_mb"] = round(start, 1)
        if cuda is not None:
            here["gpu"] = max(here["gpu"], cuda.max_memory_allocated() / 2 ** 20)
            rec["peak_gpu_mb"] = round(here["gpu"], 1)
        if _open:
            _open[-1]["rss"] = max(_open[-1]["rss"], here["rss"])
            _open[-1]["gpu"] = max(_open[-1]["gpu"], here["gpu"])
