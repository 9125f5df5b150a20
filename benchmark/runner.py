"""Run methods under the shared protocol and write the output contract (DESIGN.md):

results/<dataset>/<profile>/<method>/{predictions.jsonl, metrics.json, manifest.json}

Everything that can be wrong with the input is checked before any training. Each method's
folder appears whole or not at all. A method whose manifest already records the same
configuration hash is skipped (its results are up to date).
"""
import json
import logging
import shutil
import time
import traceback
from pathlib import Path

import numpy as np

import methods as registry
from recdata import load_dataset, make_split
from recdata.split import sample_users

from . import manifest as mf
from .config import Config, config_hash
from .context import RunContext
from .errors import BenchmarkError
from .io import atomic_write_json, jsonl_text, staged_dir
from .metrics import summarize, target_ranks
from .progress import progress

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
TRAINING_LENGTH_KEYS = ("epochs", "stopping_step")


def results_root(out=None):
    """--out, else results/ in the repository."""
    return Path(out or REPO / "results").resolve()


class Plan:
    """A validated run: config, method list, dataset and split. Built before any training."""

    def __init__(self, dataset, profile="cpu", methods=None, data_dir=None, out=None,
                 overrides=None, scaling=False):
        self.cfg = Config(profile, overrides)
        if scaling:          # Table 5: the scaling methods again on the profile's larger backbone
            sc = self.cfg.shared["scaling"]
            self.cfg = Config(profile, list(overrides or []) + scaling_overrides(sc))
            methods = [m for m in sc["methods"] if not methods or m in methods]
        shared = self.cfg.shared
        self.methods = list(methods) if methods else list(shared["enabled"])
        if not self.methods:
            raise BenchmarkError(f"profile '{profile}' enables no method; pass --methods a,b")
        for m in self.methods:
            registry.get(m)                                     # unknown names fail here
        self.method_cfgs = {m: self.cfg.method(m) for m in self.methods}
        if any(registry.get(m).kind == "generative" for m in self.methods):
            from methods.lm.backbone import check_backbone
            check_backbone(shared["lm"])
            sc = shared["scaling"]
            if sc["enabled"] and not scaling and set(sc["methods"]) & set(self.methods):
                if not sc["lm"]:
                    raise BenchmarkError(f"profile '{profile}': scaling.enabled is true but "
                                         "scaling.lm names no larger backbone (e.g. --set "
                                         "'scaling.lm={hidden_size: 256}')")
                check_backbone({**shared["lm"], **sc["lm"]})     # before any training
        self.dataset = load_dataset(dataset, data_dir)
        users = sample_users(self.dataset.n_users, shared["max_users"], shared["seed"])
        self.split = make_split(self.dataset, shared["history_len"], users)
        self.profile = profile
        self.git_commit = mf.git_commit()          # the code that runs is the code read now
        self.profile_dir = results_root(out) / dataset / profile
        self.results_dir = (self.profile_dir / "_scaling" / shared["scaling"]["label"] if scaling
                            else self.profile_dir)

    def context(self, method, work_dir=None):
        """The RunContext a method is fitted and ranked with (work_dir: default _work/)."""
        shared = self.cfg.shared
        return RunContext(dataset=self.dataset, split=self.split, profile=self.profile,
                          config=shared, method_config=self.method_cfgs[method],
                          results_dir=self.results_dir,
                          work_dir=work_dir or self.results_dir / "_work",
                          device=shared["device"], seed=shared["seed"],
                          config_of=self.cfg.method, cache_dir=self.profile_dir.parent / "_cache")

    def key(self, method, training_length=True):
        """Hash of everything that produces a method's predictions. Without the training
        length (epochs, stopping_step), it keys the work folder, so a run whose cap is raised
        continues from its last checkpoint instead of starting over."""
        shared = {k: v for k, v in self.cfg.shared.items()
                  if k not in ("enabled", "threads", "jobs", "scaling", "bench_cot")}
        mcfg = {k: v for k, v in self.method_cfgs[method].items()
                if training_length or k not in TRAINING_LENGTH_KEYS}
        deps = {d: self.cfg.method(d) for d in registry.get(method).depends_on}
        return config_hash({"method": method, "config": mcfg, "shared": shared,
                            "data": self.dataset.fingerprint, **({"depends_on": deps} if deps else {})})


def scaling_overrides(sc):
    """--set pairs that turn a profile into its Table-5 variant: the larger backbone's lm keys;
    LASAR's and Explicit CoT's studies off (Table 5 reads the main rows only)."""
    return ([f"lm.{k}={json.dumps(v)}" for k, v in sc["lm"].items()]
            + ["lasar.studies.enabled=false", "cot_gream.studies.enabled=false"])


def _check_topk(topk, n, k, n_items, method):
    topk = np.asarray(topk)
    if topk.shape != (n, k):
        raise RuntimeError(f"{method}.rank returned shape {topk.shape}, expected {(n, k)}")
    if topk.min() < 0 or topk.max() >= n_items:
        raise RuntimeError(f"{method}.rank returned item indices outside the catalog")
    srt = np.sort(topk, axis=1)
    if (srt[:, 1:] == srt[:, :-1]).any():
        raise RuntimeError(f"{method}.rank returned a list with a repeated item")
    return topk


def is_done(folder, key):
    man = folder / "manifest.json"
    if not (man.is_file() and (folder / "predictions.jsonl").is_file()):
        return False
    with open(man) as f:
        return json.load(f).get("config_hash") == key


def done_metrics(folder, key):
    """The metrics of a method folder whose results are up to date with `key`, else None."""
    if not is_done(folder, key):
        return None
    with open(folder / "metrics.json") as f:
        return json.load(f)


def is_main_process():
    """False in the extra processes of `accelerate launch`/torchrun (they help training and
    write nothing)."""
    import os
    return int(os.environ.get("RANK", "0")) == 0


def _fit_and_rank(method, ctx):
    """Train, then rank every test user. -> (topk (n, k) item indices, timings)."""
    test = ctx.split.test
    t0 = time.perf_counter()
    log.info("%s: training on %d examples (%d users)", method.name, len(ctx.split.train),
             len(test))
    method.fit(ctx)
    if not is_main_process():
        return None, {}
    t1 = time.perf_counter()
    with progress(total=len(test), desc=f"{method.name} rank test users", unit="user") as bar:
        topk = _check_topk(method.rank(ctx, test, progress=bar), len(test), ctx.topk,
                           ctx.dataset.n_items, method.name)
    t2 = time.perf_counter()
    return topk, {"fit_s": round(t1 - t0, 2), "rank_s": round(t2 - t1, 2),
                  "rank_ms_per_user": round(1000 * (t2 - t1) / len(test), 4)}


def _write(folder, ctx, method, topk, metrics, manifest, extra_dir=None):
    """predictions.jsonl, metrics.json, manifest.json (and the files a method's studies wrote
    to `extra_dir`): staged, then swapped in whole."""
    ds, test = ctx.dataset, ctx.split.test
    ids = np.asarray(ds.item_ids, dtype=object)
    extra = method.prediction_fields()                 # {name: (n,) values}, e.g. LASAR's N
    rows = ({"user": ds.user_ids[u], "target": ids[t], "topk": ids[row].tolist(),
             **{k: v[i].item() for k, v in extra.items()}}
            for i, (u, t, row) in enumerate(zip(test.users, test.targets, topk)))
    with staged_dir(folder) as stage:
        (stage / "predictions.jsonl").write_text(jsonl_text(rows))
        atomic_write_json(stage / "metrics.json", metrics)
        atomic_write_json(stage / "manifest.json", manifest)
        if extra_dir is not None and extra_dir.is_dir():
            for f in extra_dir.iterdir():
                shutil.copy2(f, stage / f.name)


def run_method(plan, name):
    """Fit, rank every test user, write the contract files. Returns the metrics dict."""
    shared, mcfg, key = plan.cfg.shared, plan.method_cfgs[name], plan.key(name)
    folder = plan.results_dir / name
    done = done_metrics(folder, key)
    if done is not None:
        log.info("%s: results up to date (config %s), skipped", name, key)
        return done
    work = plan.results_dir / "_work" / f"{name}-{plan.key(name, training_length=False)}"
    work.mkdir(parents=True, exist_ok=True)
    ctx = plan.context(name, work)
    method = registry.get(name)(mcfg)
    started = mf.now()
    topk, timings = _fit_and_rank(method, ctx)
    if topk is None:                         # a helper process under DDP: nothing to write
        return {}
    ds, test = plan.dataset, plan.split.test
    metrics = summarize(target_ranks(topk, test.targets), shared["eval"]["ks"])
    log.info("%s: %s", name, "  ".join(f"{m} {v:.4f}" for m, v in metrics.items()
                                       if m != "n_users"))
    studies_dir = work / "studies"
    shutil.rmtree(studies_dir, ignore_errors=True)
    t0 = time.perf_counter()
    studies = method.studies(ctx, topk, studies_dir)
    if studies:
        timings["studies_s"] = round(time.perf_counter() - t0, 2)
    manifest = mf.build(
        method=name, display_name=method.display_name, kind=method.kind, profile=plan.profile,
        dataset={"name": ds.name, "root": str(ds.root), "fingerprint": ds.fingerprint,
                 "users": ds.n_users, "items": ds.n_items, "test_users": len(test),
                 "train_examples": len(plan.split.train)},
        config={"shared": shared, "method": mcfg}, config_hash=key, seed=shared["seed"],
        started=started, git_commit_at_start=plan.git_commit, timings=timings,
        fit_info=getattr(method, "fit_info", {}), studies=studies,
        metrics=metrics)
    _write(folder, ctx, method, topk, metrics, manifest, studies_dir)
    return metrics


def run(plan):
    """Run every planned method; a failing method is reported loudly and the others go on.
    Returns {method: metrics or None}."""
    import torch
    threads = plan.cfg.shared["threads"]
    if threads:
        torch.set_num_threads(threads)
    if plan.cfg.shared["device"] == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError(f"profile '{plan.profile}' needs a CUDA GPU and none is visible "
                             "(run a CPU profile: --profile cpu or smoke)")
    results = {}
    for name in plan.methods:
        try:
            results[name] = run_method(plan, name)
        except BenchmarkError:
            raise
        except Exception as e:  # one method's crash must not hide the others' results
            log.error("METHOD FAILED: %s: %s: %s\n%s", name, type(e).__name__, e,
                      traceback.format_exc())
            results[name] = None
    return results
