"""Several methods at once (`jobs` > 1): each method trains in its own process (`python -m
benchmark.child REQUEST METHOD`, `threads` = cores / jobs), a method starts when the methods it
depends on have finished (never after one of them failed: it is skipped, as in a sequential
run), and the longest chain starts first. Each child's output goes to
results/<ds>/<profile>/_logs/<method>.log; this process prints a status line with every running
child's latest progress line once a minute.

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

from .runner import dependencies, done_metrics, failed_dependency, log_skipped

log = logging.getLogger(__name__)


def _priorities(names):
    """Cost of a method plus the costs of everything that waits on it (critical path first)."""
    deps = dependencies(names)
    users = {m: [n for n in names if m in deps[n]] for m in names}

    def chain(m):
        return registry.spec(m).cost + max((chain(u) for u in users[m]), default=0)
    return deps, {m: chain(m) for m in names}


def threads_per_job(settings, jobs):
    """Torch threads of each child: the profile's `threads`, else the cores shared out."""
    return settings.threads or max(1, (os.cpu_count() or 1) // jobs)


class _Task:
    """One method of one plan: the main run's, or Table 5's larger-backbone run (tag = label)."""

    def __init__(self, plan, method, tag, child_argv, deps, prio):
        self.plan, self.method, self.tag, self.child_argv = plan, method, tag, child_argv
        self.name = f"{method}@{tag}" if tag else method
        self.deps = [f"{d}@{tag}" if tag else d for d in deps]
        self.prio = prio
        self.log = plan.results_dir / "_logs" / f"{method}.log"


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


def run_parallel(plans, jobs, threads, status_every=60.0):
    """Run every method of `plans` = [(plan, child_argv, tag)] in one queue, up to `jobs`
    children at once (`threads` torch threads each): a method starts when its dependencies in
    the same plan have finished with results (it is skipped, as failed, when one has none), the
    longest chain first, so Table 5's larger-backbone runs (tag = their label) fill a core as
    soon as one is free instead of waiting for the slowest method. `child_argv(method)` -> argv
    of the child. Returns {(tag, method): metrics dict, or None if it failed or was skipped}."""
    tasks = []
    for plan, child_argv, tag in plans:
        deps, prio = _priorities(list(plan.methods))
        tasks += [_Task(plan, m, tag, child_argv, deps[m], prio[m]) for m in plan.methods]
    by_name = {t.name: t for t in tasks}
    for t in tasks:
        t.log.parent.mkdir(parents=True, exist_ok=True)
    pending = sorted(tasks, key=lambda t: (-t.prio, tasks.index(t)))
    running, results, started = {}, {}, {}
    last_status = time.monotonic()
    print(f"[run] {len(tasks)} method run(s), {jobs} at a time, {threads} thread(s) each; logs in "
          f"{', '.join(sorted({str(t.log.parent) for t in tasks}))}", file=sys.stderr, flush=True)
    try:
        while pending or running:
            for t in list(pending):
                if not all(d in results for d in t.deps):
                    continue
                failed = failed_dependency(t.deps, results)
                if failed is None and len(running) >= jobs:
                    continue                  # no free slot (a skip below needs none)
                pending.remove(t)
                done = done_metrics(t.plan.results_dir / t.method, t.plan.key(t.method))
                if done is not None:
                    results[t.name] = done
                    print(f"[run] {t.name}: results up to date, skipped", file=sys.stderr,
                          flush=True)
                    continue
                if failed is not None:
                    log_skipped(t.name, failed)
                    results[t.name] = None
                    continue
                logf = open(t.log, "ab")
                argv = t.child_argv(t.method)
                logf.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n"
                           .encode())
                logf.flush()
                running[t.name] = (subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                                    preexec_fn=_die_with_parent), logf)
                started[t.name] = time.monotonic()
                print(f"[run] {t.name}: started (log: {t.log})", file=sys.stderr, flush=True)
            for name, (proc, logf) in list(running.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                logf.close()
                del running[name]
                t = by_name[name]
                mins = (time.monotonic() - started[name]) / 60
                results[name] = (done_metrics(t.plan.results_dir / t.method, t.plan.key(t.method))
                                 if rc == 0 else None)
                if results[name] is not None:
                    print(f"[run] {name}: done in {mins:.1f} min, NDCG@10 "
                          f"{results[name]['NDCG@10']:.4f}", file=sys.stderr, flush=True)
                else:
                    log.error("METHOD FAILED: %s: exit code %s after %.1f min; see %s", name, rc,
                              mins, t.log)
            if running and time.monotonic() - last_status >= status_every:
                last_status = time.monotonic()
                for name in running:
                    print(f"[run] {name} ({(time.monotonic() - started[name]) / 60:.0f} min): "
                          f"{_last_progress(by_name[name].log)}", file=sys.stderr, flush=True)
            if running:
                time.sleep(1.0)
    finally:     # interrupted (Ctrl-C, or SIGTERM: the pipeline turns it into KeyboardInterrupt):
                 # stop the children; their work is resumable
        for proc, logf in running.values():
            proc.terminate()
        for proc, logf in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()
    return {(t.tag, t.method): results.get(t.name) for t in tasks}
