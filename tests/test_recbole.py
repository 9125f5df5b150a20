"""RecBole gets exactly our split, and its internal ids map back to our items."""
import logging
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import methods
from benchmark.plan import Plan, RunRequest
from protocol.errors import BenchmarkError
from benchmark.runner import run_plan
from methods.base import Method
from methods.recbole_models import write_atomic_files

from .conftest import write_dataset


def _plan(tmp_path, methods_=("sasrec",), **sets):
    write_dataset(tmp_path / "data", n_users=50, n_items=30)
    over = [f"{k}={v}" for k, v in sets.items()]
    return Plan(RunRequest("toy", "smoke", list(methods_), tmp_path / "data",
                           tmp_path / "results", over))


def test_atomic_files_are_our_split(tmp_path):
    plan = _plan(tmp_path)
    folder = tmp_path / "rb" / "toy"
    write_atomic_files(plan.dataset, plan.split, folder)
    ids = plan.dataset.item_ids
    for part in ("train", "valid", "test"):
        lines = (folder / f"toy.{part}.inter").read_text().splitlines()[1:]
        ex = getattr(plan.split, part)
        assert len(lines) == len(ex)
        for line, h, t in zip(lines, ex.histories(), ex.targets):
            _, hist, target = line.split("\t")
            assert hist.split() == [ids[i] for i in h] and target == ids[t]


def test_rank_equals_scoring_every_item(tmp_path):
    plan = _plan(tmp_path, **{"sasrec.epochs": 2})
    m = plan.method("sasrec")
    ctx = plan.context("sasrec")
    ctx.show_progress = False
    fitted = m.fit(ctx)
    ex = plan.split.test.subset(np.arange(5))
    top = m.rank(ctx, fitted, ex).items
    # brute force: score each of our items through RecBole's own id mapping
    from recbole.data.interaction import Interaction
    hist = np.where(ex.history >= 0, fitted.to_internal[ex.history.clip(0)], 0)
    with torch.no_grad():
        scores = fitted.model.full_sort_predict(Interaction({
            "item_id_list": torch.as_tensor(hist), "item_length": torch.as_tensor(ex.lengths)}))
    scores = scores.view(5, -1)[:, torch.as_tensor(fitted.to_internal)]   # (5, our items)
    want = torch.topk(scores, 30, dim=1).indices.numpy()               # 30 items < 50
    assert top.shape == (5, 30) and np.array_equal(top, want)


@dataclass(frozen=True)
class NoSettings:
    pass


class AlwaysFails(Method):
    config_class = NoSettings

    def fit(self, ctx):
        raise RuntimeError("boom")


def test_a_failing_method_writes_nothing_and_others_go_on(tmp_path, caplog, monkeypatch):
    monkeypatch.setitem(methods._SPECS, "_always_fails", methods.MethodSpec(
        "_always_fails", "tests.test_recbole:AlwaysFails", "Fails", "discriminative"))
    plan = _plan(tmp_path, ("_always_fails", "gru4rec"), **{"gru4rec.epochs": 1})
    with caplog.at_level(logging.ERROR):
        res = run_plan(plan)
    assert res["_always_fails"] is None and res["gru4rec"]["n_users"] == 50
    assert "METHOD FAILED: _always_fails" in caplog.text
    root = tmp_path / "results" / "toy" / "smoke"
    assert not (root / "_always_fails").exists() and (root / "gru4rec" / "manifest.json").exists()


def test_gpu_profile_without_gpu_is_one_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BenchmarkError, match="runs on a CUDA GPU and none is visible"):
        _plan(tmp_path, device="cuda")                 # before any work: in the plan


def test_raised_cap_resumes_and_equals_an_uninterrupted_run(tmp_path, caplog):
    import json
    write_dataset(tmp_path / "data", n_users=50, n_items=30)

    def go(out, epochs):
        plan = Plan(RunRequest("toy", "smoke", ["sasrec"], tmp_path / "data", out,
                               [f"sasrec.epochs={epochs}", "sasrec.stopping_step=10"]))
        run_plan(plan)
        folder = out / "toy" / "smoke" / "sasrec"
        return (json.loads((folder / "manifest.json").read_text())["fit_info"],
                (folder / "predictions.jsonl").read_text())

    whole, whole_pred = go(tmp_path / "a", 4)
    go(tmp_path / "b", 2)
    with caplog.at_level(logging.INFO):
        resumed, resumed_pred = go(tmp_path / "b", 4)
    assert "resuming after epoch 1" in caplog.text
    assert whole["epochs_run"] == resumed["epochs_run"] == 4
    assert resumed["valid_ndcg10_curve"] == whole["valid_ndcg10_curve"]
    assert resumed_pred == whole_pred


def test_manifest_records_the_commit_read_at_start(tmp_path, monkeypatch):
    """A long run must record the code that ran, not a commit made while it trained."""
    import json

    import protocol.manifest as mf
    monkeypatch.setattr(mf, "git_commit", lambda: "start-commit")
    plan = _plan(tmp_path, ("gru4rec",), **{"gru4rec.epochs": 1})
    monkeypatch.setattr(mf, "git_commit", lambda: "later-commit")
    run_plan(plan)
    man = json.loads((tmp_path / "results" / "toy" / "smoke" / "gru4rec" / "manifest.json")
                     .read_text())
    assert man["git_commit"] == "start-commit"


def _git(*args):
    import subprocess

    from .conftest import REPO
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def test_manifest_records_the_commit_packages_and_key_that_produced_it(tmp_path):
    """The provenance values, not just the keys: HEAD (with +dirty when tracked files differ
    from it), the installed version of every package recorded, and the plan's results key,
    which the recorded inputs hash to."""
    import json
    from importlib import metadata

    from protocol.artifact import key_of
    plan = _plan(tmp_path, ("gru4rec",), **{"gru4rec.epochs": 1})
    run_plan(plan)
    man = json.loads((tmp_path / "results" / "toy" / "smoke" / "gru4rec" / "manifest.json")
                     .read_text())
    head = _git("rev-parse", "HEAD").stdout.strip()
    dirty = _git("diff", "--quiet", "HEAD").returncode != 0
    assert len(head) == 40 and man["git_commit"] == head + ("+dirty" if dirty else "")
    assert {"torch", "numpy", "recbole"} <= set(man["packages"])
    for name, version in man["packages"].items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        assert version == installed, name
    assert man["packages"]["torch"] is not None
    assert man["config_hash"] == plan.key("gru4rec") == key_of("results", man["inputs"])
    assert man["inputs"]["config"]["epochs"] == 1
