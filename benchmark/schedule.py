"""Several methods at once (`jobs` > 1): each method trains in its own process (`python -m
benchmark run DATASET --methods M --no-reports`, `threads` = cores / jobs), a method starts
when the methods it depends on have finished, and the longest chain starts first. Each child's
output goes to results/<ds>/<profile>/_logs/<method>.log; this process prints a status line
with every running child's latest progress line once a minute.

Children write the same output contract as a sequential run (each method folder appears whole
or not at all), so a killed parallel run resumes like a sequential one.
"""
import logging
import os
import re
import signal
import subprocess
import sys
import time

import methods as registry

from .runner import done_metrics

log = logging.getLogger(__name__)


def _priorities(names):
    """Cost of a method plus the costs of everything that waits on it (critical path first)."""
    deps = {m: [d for d in registry.get(m).depends_on if d in names] for m in names}
    users = {m: [n for n in names if m in deps[n]] for m in names}

    def chain(m):
        return registry.get(m).cost + max((chain(u) for u in users[m]), default=0)
    return deps, {m: chain(m) for m in names}


def _last_progress(path, width=110):
    """The latest progress-bar or log line of a child's log (tqdm separates updates by \\r)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            tail = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    tail = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", tail)          # colour codes (RecBole's bars)
    parts = [p.strip() for p in re.split(r"[\r\n]", tail) if p.strip()]
    return parts[-1][:width] if parts else ""


def _die_with_parent():
    """In a child, before exec: receive SIGTERM when the parent dies, even by SIGKILL (Linux),
    so no orphaned training outlives an interrupted run."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def run_parallel(plan, child_argv, jobs, status_every=60.0):
    """Run plan.methods with up to `jobs` children. `child_argv(method, threads)` -> argv of the
    child. Returns {method: metrics dict, or None if it failed}."""
    names = list(plan.methods)
    deps, prio = _priorities(names)
    threads = plan.cfg.shared["threads"] or max(1, (os.cpu_count() or 1) // jobs)
    log_dir = plan.results_dir / "_logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    pending = sorted(names, key=lambda m: (-prio[m], names.index(m)))
    running, results, started = {}, {}, {}
    last_status = time.monotonic()
    print(f"[run] {len(names)} method(s), {jobs} at a time, {threads} thread(s) each; logs in "
          f"{log_dir}", file=sys.stderr, flush=True)
    try:
        while pending or running:
            for m in list(pending):
                if len(running) >= jobs:
                    break
                if not all(d in results for d in deps[m]):
                    continue
                pending.remove(m)
                done = done_metrics(plan.results_dir / m, plan.key(m))
                if done is not None:
                    results[m] = done
                    print(f"[run] {m}: results up to date, skipped", file=sys.stderr, flush=True)
                    continue
                logf = open(log_dir / f"{m}.log", "ab")
                argv = child_argv(m, threads)
                logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n"
                           .encode())
                logf.flush()
                running[m] = (subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                               preexec_fn=_die_with_parent), logf)
                started[m] = time.monotonic()
                print(f"[run] {m}: started (log: {log_dir / (m + '.log')})", file=sys.stderr,
                      flush=True)
            for m, (proc, logf) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                logf.close()
                del running[m]
                mins = (time.monotonic() - started[m]) / 60
                results[m] = done_metrics(plan.results_dir / m, plan.key(m)) if rc == 0 else None
                if results[m] is not None:
                    print(f"[run] {m}: done in {mins:.1f} min, NDCG@10 "
                          f"{results[m]['NDCG@10']:.4f}", file=sys.stderr, flush=True)
                else:
                    log.error("METHOD FAILED: %s: exit code %s after %.1f min; see %s", m, rc,
                              mins, log_dir / f"{m}.log")
            if running and time.monotonic() - last_status >= status_every:
                last_status = time.monotonic()
                for m in running:
                    print(f"[run] {m} ({(time.monotonic() - started[m]) / 60:.0f} min): "
                          f"{_last_progress(log_dir / (m + '.log'))}", file=sys.stderr, flush=True)
            if running:
                time.sleep(1.0)
    finally:     # interrupted (Ctrl-C, or SIGTERM: cmd_run turns it into KeyboardInterrupt):
                 # stop the children; their work is resumable
        for proc, logf in running.values():
            proc.terminate()
        for proc, logf in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()
    return results
