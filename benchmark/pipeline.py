"""`./run_all.sh DATASET` as a pipeline of named steps, each a function read top to bottom:

  plan      every configuration value, method, backbone and data file checked (plan.py)
  lock      the results folder held for this run (runlock.py): a second run there stops
  train     the methods and Table 5's larger-backbone runs: in this process one after the
            other, or (profile `jobs` > 1) in one queue of child processes (schedule.py)
  bench     Table 4's timing (`bench cot`) once LASAR and Explicit CoT have results
  reports   every table, figure, the comparison and the claims (reports/)
  run log   one line per invocation in run_log.jsonl, also when interrupted
  report.md written last, so it states this invocation's own wall time

Every step skips what is already up to date, so a killed run started again redoes only the
unfinished work. Under `accelerate launch` the extra processes take part in every stage of
train and bench (training: DDP; decoding: each process its share of the batches) and write
nothing; reports are the main process's.
"""
import json
import logging
import signal
import sys
import time
from contextlib import contextmanager

import methods as registry

from .plan import Plan, RunRequest, claim_folder
from .protocol.dist import is_main_process
from .protocol.manifest import hardware
from .runlock import hold

log = logging.getLogger(__name__)


def say(msg):
    """One line to stderr (by the main process only under `accelerate launch`)."""
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)


# --- plan ---------------------------------------------------------------------------------
def plan_runs(req, only_reports=False):
    """The main plan and, when the profile enables Table 5 (and training is asked for), the
    larger-backbone plan."""
    plan = Plan(req.dataset, req.profile, req.methods, req.data_dir, req.out, req.overrides)
    plans = [plan]
    if only_reports:
        return plans
    sc = plan.settings.scaling
    if not req.scaling and sc.enabled and set(sc.methods) & set(plan.methods):
        big = Plan(req.dataset, req.profile, plan.methods, req.data_dir, req.out, req.overrides,
                   scaling=True)
        say(f"[run] Table 5: {', '.join(big.methods)} also on the larger backbone "
            f"({big.results_dir})")
        plans.append(big)
    return plans


# --- train --------------------------------------------------------------------------------
def child_argv(plan, threads):
    """argv of one method's own process in a parallel run (benchmark/child.py)."""
    req = plan.request
    child = RunRequest(req.dataset, req.profile, None, req.data_dir, req.out,
                       req.overrides + ["jobs=1", f"threads={threads}"], req.scaling)
    return lambda method: [sys.executable, "-m", "benchmark.child", child.to_json(), method]


def train(plans):
    """Every method of every plan. One queue of children when the profile's jobs > 1 (Table
    5's runs start as soon as a core is free), else one plan after the other in this process.
    -> one {method: metrics or None} per plan."""
    from .runner import run
    from .schedule import run_parallel, threads_per_job
    jobs = plans[0].settings.jobs
    if jobs <= 1 or sum(len(p.methods) for p in plans) <= 1:
        return [run(p) for p in plans]
    generative = [m for m in plans[0].methods if registry.spec(m).kind == "generative"]
    if generative:     # the SID table once, here with every core, not in two children at once
        plans[0].context(generative[0]).sids()
    threads = threads_per_job(plans[0].settings, jobs)
    tags = [p.settings.scaling.label if p.request.scaling else "" for p in plans]
    res = run_parallel([(p, child_argv(p, threads), tag) for p, tag in zip(plans, tags)], jobs,
                       threads)
    return [{m: res[(tag, m)] for m in p.methods} for p, tag in zip(plans, tags)]


# --- bench --------------------------------------------------------------------------------
def bench_step(plan, results):
    """Table 4's timing (bench cot) once LASAR and Explicit CoT have results; reused when
    its artifact (keyed by the two methods' result keys and the bench settings) is done."""
    bc = plan.settings.bench_cot
    if not bc.enabled or not {"lasar", "cot_gream"} <= set(plan.methods):
        return
    if not (results.get("lasar") and results.get("cot_gream")):
        say("bench cot: skipped (LASAR or Explicit CoT has no results); Table 4 will say so")
        return
    from .bench.cot import bench_cot
    res, fresh = bench_cot(plan, bc.users, bc.repeats)
    if not fresh:
        say(f"bench cot: up to date ({plan.results_dir / 'bench' / 'cot.json'}), skipped")
        return
    say(f"bench cot: {res['users']} users, ms/user {res['ms_per_user']}; CoT generation / "
        f"LASAR {res['cot_generation_over_lasar']:.2f}x")


# --- reports ------------------------------------------------------------------------------
def reports_step(plan, report_md=True):
    from reports.build import write_reports
    for p in write_reports(plan.profile_dir, plan.settings.eval, report_md):
        say(f"wrote {p}")


def report_md_step(plan):
    from reports.build import write_report_md
    from reports.results_io import method_dirs
    if method_dirs(plan.profile_dir):
        say(f"wrote {write_report_md(plan.profile_dir)}")


# --- run log ------------------------------------------------------------------------------
class RunLog:
    """Appends this invocation's wall time to run_log.jsonl when it ends, also when it was
    interrupted (Ctrl-C, SIGTERM; not SIGKILL): a resumed run's time is the sum of its lines."""

    def __init__(self, plan, t0):
        self.plan, self.t0 = plan, t0
        self.failed, self.completed = [], False

    def write(self):
        line = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.t0)),
                "wall_s": round(time.time() - self.t0, 1), "completed": self.completed,
                "command": sys.argv, "methods": self.plan.methods, "failed": self.failed,
                "hardware": hardware()}
        self.plan.profile_dir.mkdir(parents=True, exist_ok=True)
        with open(self.plan.profile_dir / "run_log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt():
    """SIGTERM unwinds like Ctrl-C: parallel children are stopped and the run log written."""
    old = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# --- the pipeline -------------------------------------------------------------------------
def run(req, only_reports=False):
    """The whole run. -> exit code (0; 1 when a method failed)."""
    t0 = time.time()
    plans = plan_runs(req, only_reports)
    main = plans[0]
    if only_reports:
        reports_step(main)
        return 0
    with hold(main.profile_dir):          # one run per results folder (benchmark/runlock.py)
        if is_main_process():
            claim_folder(main)
        runlog = RunLog(main, t0)
        try:
            with sigterm_as_interrupt():
                results, *scaled = train(plans)     # the same in every process
                runlog.failed = [m for m, r in results.items() if r is None]
                runlog.failed += [f"{m} (larger backbone)" for r in scaled
                                  for m, x in r.items() if x is None]
                bench_step(main, results)               # in every process (collective)
                if not is_main_process():
                    return 0
                reports_step(main, report_md=False)        # report.md after run_log.jsonl
                runlog.completed = True
        finally:
            if is_main_process():
                runlog.write()
        report_md_step(main)
    if runlog.failed:
        say(f"error: method(s) failed: {', '.join(runlog.failed)} (see the log above); "
            "their rows are missing from the tables")
        return 1
    return 0
