"""Run methods under the shared protocol and write the output contract (../shared/DESIGN.md):

results/<dataset>/<profile>/<method>/{predictions.jsonl, metrics.json, manifest.json}

Each method's folder appears whole or not at all. A method whose manifest already records the
same key (benchmark/plan.py: a hash of the named inputs of its results) is skipped.

Under `accelerate launch` every process fits, ranks the test users (a generative method's
batches are shared out among the processes and gathered back: methods/lm/decode.py) and runs
the studies; only the main process writes the folder.
"""
import json
import logging
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import methods as registry

from protocol import manifest as mf
from protocol import dist
from protocol.errors import BenchmarkError
from protocol.io import atomic_write_json, jsonl_text, staged_dir
from protocol.metrics import summarize, target_ranks
from protocol.progress import progress

log = logging.getLogger(__name__)


def check_ranking(ranking, n, k, n_items, method):
    """The contract of `rank`: (n, k) distinct catalog items per example."""
    topk = np.asarray(ranking.items)
    if topk.shape != (n, k):
        raise RuntimeError(f"{method}.rank returned shape {topk.shape}, expected {(n, k)}")
    if topk.min() < 0 or topk.max() >= n_items:
        raise RuntimeError(f"{method}.rank returned item indices outside the catalog")
    srt = np.sort(topk, axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        raise RuntimeError(f"{method}.rank returned a list with a repeated item")
    for name, v in ranking.fields.items():
        if len(v) != n:
            raise RuntimeError(f"{method}.rank field '{name}' has {len(v)} values, expected {n}")
    return ranking


def done_metrics(folder, key):
    """The metrics of a method folder whose results are up to date with `key`, else None."""
    man, met = folder / "manifest.json", folder / "metrics.json"
    if not (man.is_file() and met.is_file() and (folder / "predictions.jsonl").is_file()):
        return None
    with open(man) as f:
        if json.load(f).get("config_hash") != key:
            return None
    with open(met) as f:
        return json.load(f)


def dependencies(names):
    """{method: the methods among `names` it depends on (registry `depends_on`)}."""
    return {m: [d for d in registry.spec(m).depends_on if d in names] for m in names}


def in_dependency_order(names):
    """`names` with every method after the methods it depends on, otherwise as given."""
    deps, out = dependencies(names), []
    while len(out) < len(names):
        out.append(next(m for m in names if m not in out and all(d in out for d in deps[m])))
    return out


def failed_dependency(deps, results):
    """The first of `deps` that ran and has no results (it failed, or was skipped itself), else
    None."""
    return next((d for d in deps if d in results and results[d] is None), None)


def log_skipped(name, dep):
    """The one line for a method not started because its dependency `dep` failed (its results
    are then None: the pipeline reports it as failed)."""
    log.error("METHOD SKIPPED: %s: its dependency %s failed, so it was not started", name, dep)


def fit_and_rank(method, ctx):
    """Train, then rank every test user (in every process of a distributed run, each ranking
    its share and getting all rows; times are the group's wall time: dist.clock).
    -> (fit record, Ranking, timings)."""
    test = ctx.split.test
    t0 = time.perf_counter()
    log.info("%s: training on %d examples (%d users)", method.name, len(ctx.split.train),
             len(test))
    dist.init(ctx.device, ctx.config.dist_timeout_s)   # before the first collective
    fitted = method.fit(ctx)
    t1 = dist.clock()
    with progress(total=len(test), desc=f"{method.name} rank test users", unit="user") as bar:
        with method.precision(ctx):
            ranking = check_ranking(method.rank(ctx, fitted, test, progress=bar), len(test),
                                    ctx.topk, ctx.dataset.n_items, method.name)
    t2 = dist.clock()
    return fitted, ranking, {"fit_s": round(t1 - t0, 2), "rank_s": round(t2 - t1, 2),
                             "rank_ms_per_user": round(1000 * (t2 - t1) / len(test), 4),
                             "processes": dist.world_size()}


def write_results(folder, ctx, ranking, metrics, manifest, extra_dir=None):
    """predictions.jsonl, metrics.json, manifest.json (and the files a method's studies wrote
    to `extra_dir`): staged, then swapped in whole."""
    ds, test = ctx.dataset, ctx.split.test
    ids = np.asarray(ds.item_ids, dtype=object)
    rows = ({"user": ds.user_ids[u], "target": ids[t], "topk": ids[row].tolist(),
             **{k: v[i].item() for k, v in ranking.fields.items()}}
            for i, (u, t, row) in enumerate(zip(test.users, test.targets, ranking.items)))
    with staged_dir(folder) as stage:
        (stage / "predictions.jsonl").write_text(jsonl_text(rows))
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "manifest.json", manifest)
        if extra_dir is not None and extra_dir.is_dir():
            for f in extra_dir.iterdir():
                shutil.copy2(f, stage / f.name)


def run_method(plan, name):
    """Fit, rank every test user, run the method's studies, write the contract files (the
    main process of a distributed run; the others fit, rank and run the studies with it).
    -> the metrics dict."""
    key = plan.key(name)
    folder = plan.results_dir / name
    done = done_metrics(folder, key)
    if done is not None:
        log.info("%s: results up to date (key %s), skipped", name, key)
        return done
    ctx = plan.context(name)
    method = plan.method(name)
    started = mf.now()
    fitted, ranking, timings = fit_and_rank(method, ctx)
    ds, test = plan.dataset, plan.split.test
    metrics = summarize(target_ranks(ranking.items, test.targets), ctx.config.eval.ks)
    if not dist.is_main_process():          # the studies' decoding and training are shared
        with method.precision(ctx):
            method.studies(ctx, fitted, ranking, None)
        return metrics
    log.info("%s: %s", name, "  ".join(f"{m} {v:.4f}" for m, v in metrics.items()
                                       if m != "n_users"))
    plan.results_dir.mkdir(parents=True, exist_ok=True)
    for stale in plan.results_dir.glob(f".{name}.studies-*"):     # what a killed run left
        shutil.rmtree(stale, ignore_errors=True)
    studies_dir = Path(tempfile.mkdtemp(dir=plan.results_dir, prefix=f".{name}.studies-"))
    try:
        t0 = time.perf_counter()
        with method.precision(ctx):
            studies = method.studies(ctx, fitted, ranking, studies_dir)
        if studies:
            timings["studies_s"] = round(time.perf_counter() - t0, 2)
        manifest = mf.build(
            method=name, display_name=method.spec.display_name, kind=method.spec.kind,
            profile=plan.profile,
            dataset={"name": ds.name, "root": str(ds.root), "fingerprint": ds.fingerprint,
                     "users": ds.n_users, "items": ds.n_items, "test_users": len(test),
                     "train_examples": len(plan.split.train)},
            config={"shared": plan.cfg.shared, "method": plan.cfg.method(name)},
            config_hash=key, inputs=plan.inputs(name), seed=ctx.seed, started=started,
            git_commit_at_start=plan.git_commit, timings=timings, fit_info=fitted.info,
            studies=studies, metrics=metrics)
        write_results(folder, ctx, ranking, metrics, manifest, studies_dir)
    finally:
        shutil.rmtree(studies_dir, ignore_errors=True)
    return metrics


def run_plan(plan):
    """Run every planned method in this process, each after the methods it depends on; a
    failing method is reported loudly and the others go on, but not the methods that depend on
    it (skipped, no results). Under `accelerate launch` a failure ends the launch instead (the
    other processes would wait for this one in a collective forever).
    -> {method: metrics or None}."""
    import torch
    threads = plan.settings.threads
    if threads:
        torch.set_num_threads(threads)
    if plan.settings.device == "cuda":    # float32 matmuls (SASRec, GRU4Rec, ...) on tensor cores
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    results = {}
    deps = dependencies(plan.methods)
    for name in in_dependency_order(plan.methods):
        failed = failed_dependency(deps[name], results)
        if failed is not None and done_metrics(plan.results_dir / name, plan.key(name)) is None:
            log_skipped(name, failed)
            results[name] = None
            continue
        try:
            results[name] = run_method(plan, name)
        except BenchmarkError:
            raise
        except Exception as e:  # one method's crash must not hide the others' results
            if dist.distributed():
                raise           # but under accelerate launch the other processes would wait
            log.error("METHOD FAILED: %s: %s: %s\n%s", name, type(e).__name__, e,
                      traceback.format_exc())
            results[name] = None
    return {m: results[m] for m in plan.methods}
