"""`./run_all.sh DATASET` as a pipeline of named steps, each a function read top to bottom:

  plan      every configuration value, method, backbone and data file checked (plan.py)
  lock      the results folder held for this run (runlock.py): a second run there stops
  estimate  each stage's examples, tokens, peak memory and time (estimate.py) printed and
            written to plan.json; a stage that does not fit stops the run here (`--dry-run`
            prints the same plan and stops)
  train     the methods and Table 5's larger-backbone runs: in this process one after the
            other, or (profile `jobs` > 1) in one queue of child processes (schedule.py)
  bench     Table 4's timing (`bench cot`) once LASAR and Explicit CoT have results
  reports   every table, figure, the comparison and the claims (reports/)
  run log   one line per invocation in run_log.jsonl, also when interrupted
  report.md written last, so it states this invocation's own wall time

With several seeds (`--seeds 42,43,44`) each seed is a plan of its own, writing
results/<ds>/<profile>/seed-<s>/ (methods, tables, report.md), all in the one queue of train;
Table 5 and the bench run on the first seed only; the seed-pooled tables and claims
(reports/seeds.py) go to results/<ds>/<profile>/ itself, which holds the run's lock.

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

from .plan import Plan, claim_folder
from protocol.dist import init as dist_init
from protocol.dist import is_main_process, world_size
from protocol.errors import BenchmarkError
from protocol.manifest import hardware
from .runlock import hold

log = logging.getLogger(__name__)


def say(msg):
    """One line to stderr (by the main process only under `accelerate launch`)."""
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)


# --- plan ---------------------------------------------------------------------------------
def plan_runs(req, only_reports=False):
    """The main plan (one per seed with --seeds) and, when the profile enables Table 5 (and
    training is asked for), the larger-backbone plan (of the first seed)."""
    reqs = [req.for_seed(s) for s in req.seeds] if req.seeds else [req]
    plans = [Plan(r) for r in reqs]
    plan = plans[0]
    if only_reports:
        return plans
    sc, sv = plan.settings.scaling, plan.settings.sensitivity
    if sc.enabled and set(sc.methods) & set(plan.methods):
        big = Plan(reqs[0].for_seed(reqs[0].seed, scaling=True), plan.methods)
        say(f"[run] Table 5: {', '.join(big.methods)} also on the larger backbone "
            f"({big.results_dir})")
        plans.append(big)
    if sv.enabled and set(sv.methods) & set(plan.methods):
        for label in sv.variants:
            plans.append(Plan(reqs[0].for_seed(reqs[0].seed, sensitivity=label), plan.methods))
            say(f"[run] sensitivity row '{label}': {', '.join(plans[-1].methods)} with "
                f"{' '.join(sv.variants[label])} ({plans[-1].results_dir})")
    return plans


# --- estimate -----------------------------------------------------------------------------
def estimate_step(plans, write=True):
    """Each plan's stages with what they will cost (benchmark/estimate.py), printed; `write`
    (a real run): each to its folder's plan.json before any work. -> the lines naming the
    stages that do not fit ([] when all do), the same in every process of a launch (the main
    process estimates)."""
    from protocol.dist import gather_object

    from .estimate import plan_record, plan_stages, refusal, render
    lines = []
    if is_main_process():
        for p in plans:
            timed = p.settings.plan_timing or not write
            say(f"estimating the cost of {p.results_dir}" + (
                " (a few timed training steps and beam searches of the backbone on this device "
                "when a generative stage is to run)" if timed else " (memory only: plan_timing "
                "is false)"))
            stages, cal, limit = plan_stages(p, calibrate=timed, always=not write)
            for line in render(p.results_dir, stages, cal, limit):
                say(line)
            if write:
                p.results_dir.mkdir(parents=True, exist_ok=True)
                tmp = p.results_dir / "plan.json.tmp"
                tmp.write_text(json.dumps(plan_record(p, stages, cal, limit), indent=1))
                tmp.replace(p.results_dir / "plan.json")
            lines += refusal(stages, limit)
    return gather_object(lines)[0]


def dry_run(req):
    """`run --dry-run`: the plan, nothing trained or written. -> 0, or 1 when a stage to run
    does not fit."""
    plans = plan_runs(req)
    dist_init(plans[0].settings.device, plans[0].settings.dist_timeout_s)
    lines = estimate_step(plans, write=False)
    for line in lines:
        say("error: " + line)
    return 1 if lines else 0


# --- train --------------------------------------------------------------------------------
def child_argv(plan, threads):
    """argv of one method's own process in a parallel run (benchmark/child.py)."""
    from dataclasses import replace
    req = plan.request
    child = replace(req, methods=None, overrides=req.overrides + ["jobs=1", f"threads={threads}"])
    return lambda method: [sys.executable, "-m", "benchmark.child", child.to_json(), method]


def train(plans):
    """Every method of every plan. One queue of children when the profile's jobs > 1 (Table
    5's runs start as soon as a core is free), else one plan after the other in this process.
    -> one {method: metrics or None} per plan."""
    from .runner import run_plan
    from .schedule import run_parallel, threads_per_job
    jobs = plans[0].settings.jobs
    if jobs > 1 and world_size() > 1:      # a launch's processes train every method together
        say(f"[run] jobs={jobs} set aside: under accelerate launch ({world_size()} processes) "
            "every method and Table 5's runs train in these processes, one after another, "
            "each shared out among them (no child processes)")
        jobs = 1
    if jobs <= 1 or sum(len(p.methods) for p in plans) <= 1:
        return [run_plan(p) for p in plans]
    generative = [m for m in plans[0].methods if registry.spec(m).kind == "generative"]
    if generative:     # the SID table once, here with every core, not in two children at once
        plans[0].context(generative[0]).sids()
    threads = threads_per_job(plans[0].settings, jobs)
    tags = [p.tag for p in plans]
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
    """The plan's tables, figures and claims, from its results folder read once; then, for a
    one-seed run, the claims of every dataset of this profile side by side
    (results/claims-<profile>.md). -> the RunResults (report.md is written from it later)."""
    from reports.build import write_reports
    from reports.datasets import write_cross_dataset_claims
    from reports.results import load_results
    results = load_results(plan.profile_dir, plan.settings.eval)
    paths = write_reports(results, report_md)
    if plan.request.seed is None:
        paths += write_cross_dataset_claims(plan.profile_root.parent.parent,
                                            plan.profile_root.name)
    for p in paths:
        say(f"wrote {p}")
    return results


def report_md_step(results):
    from reports.build import write_report_md
    if results.methods:
        say(f"wrote {write_report_md(results)}")


def check_seeds_folder(plan=None, root=None):
    """--only-reports without --seeds (or `tables`) on the folder of a several-seed run (no
    method folder of its own, seed-<s>/ ones) would write claims of nothing there: one line
    saying what to add."""
    from reports.results import method_folders
    root = plan.profile_root if plan is not None else root
    seeds = (sorted(p.name[5:] for p in root.glob("seed-*") if p.is_dir())
             if root.is_dir() else [])
    if (plan is None or plan.request.seeds is None) and seeds and not method_folders(root):
        held = ", ".join("seed-" + s for s in seeds)
        raise BenchmarkError(f"{root} holds a several-seed run ({held}): add --seeds "
                             f"{','.join(seeds)} to rewrite its reports")


def seeds_step(plan, runs):
    """With several seeds: the seed-pooled Table 1 and claims in the run's own folder, from
    each seed's RunResults (`runs`, in the order of --seeds)."""
    from reports.seeds import write_seed_reports
    by_seed = dict(zip(plan.request.seeds, runs))
    for p in write_seed_reports(plan.profile_root, by_seed, plan.settings.eval):
        say(f"wrote {p}")


# --- run log ------------------------------------------------------------------------------
class RunLog:
    """Appends this invocation's wall time to run_log.jsonl when it ends, also when it was
    interrupted (Ctrl-C, SIGTERM; not SIGKILL): a resumed run's time is the sum of its lines.
    `folders`: where (each seed's folder and the run's own with several seeds)."""

    def __init__(self, plan, t0, folders):
        self.plan, self.t0, self.folders = plan, t0, folders     # [(folder, seed tag or None)]
        self.failed, self.completed = [], False                   # [(plan tag, method)]

    def write(self):
        """One line per folder: a seed's folder lists its own failures only; with several
        seeds the wall time is the whole run's (`seeds` says so)."""
        line = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.t0)),
                "wall_s": round(time.time() - self.t0, 1), "completed": self.completed,
                "command": sys.argv, "methods": self.plan.methods,
                "hardware": hardware(), **({"seeds": self.plan.request.seeds}
                                           if self.plan.request.seeds else {})}
        for folder, tag in self.folders:
            failed = [f"{m} ({t})" if t else m for t, m in self.failed
                      if tag is None or t.split("/")[0] == tag]
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / "run_log.jsonl", "a") as f:
                f.write(json.dumps({**line, "failed": failed}) + "\n")


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
def run_pipeline(req, only_reports=False):
    """The whole run. -> exit code (0; 1 when a method failed)."""
    t0 = time.time()
    plans = plan_runs(req, only_reports)
    dist_init(plans[0].settings.device, plans[0].settings.dist_timeout_s)   # a launch's group
    mains = [p for p in plans if not (p.request.scaling or p.request.sensitivity)]  # a seed each
    main = mains[0]
    if only_reports:
        check_seeds_folder(plan=main)
        runs = [reports_step(p) for p in mains]
        if req.seeds:
            seeds_step(main, runs)
        return 0
    with hold(main.profile_root):         # one run per results folder (benchmark/runlock.py)
        if is_main_process():
            claim_folder(main)
        too_big = estimate_step(plans)         # plan.json, before any work
        if too_big:
            raise BenchmarkError("a stage does not fit in memory (settings memory_limit_gb, "
                                 "or the device's): " + "; ".join(too_big))
        folders = ([(p.profile_dir, p.tag or None) for p in mains]
                   + ([(main.profile_root, None)] if req.seeds else []))
        runlog = RunLog(main, t0, folders)
        try:
            with sigterm_as_interrupt():
                results = train(plans)                 # the same in every process
                runlog.failed = [(p.tag, m) for p, r in zip(plans, results)
                                 for m, x in r.items() if x is None]
                bench_step(main, results[0])            # in every process (collective)
                if not is_main_process():
                    return 0
                # report.md after run_log.jsonl, which it quotes
                runs = [reports_step(p, report_md=False) for p in mains]
                if req.seeds:
                    seeds_step(main, runs)
                runlog.completed = True
        finally:
            if is_main_process():
                runlog.write()
        for r in runs:
            report_md_step(r)
    if runlog.failed:
        names = ", ".join(f"{m} ({t})" if t else m for t, m in runlog.failed)
        say(f"error: method(s) failed: {names} (see the log above); "
            "their rows are missing from the tables")
        return 1
    return 0
