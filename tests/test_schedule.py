"""The order methods run in: dependencies first, the longest chain first, and nothing started
after a dependency failed, both in parallel children (benchmark/schedule.py) and one after the
other in this process (benchmark/runner.py). The children here are stand-ins that take a second
and write a results folder (or fail); the method names are the registry's, so `depends_on` and
the costs are the real ones."""
import json
import logging
import sys
from types import SimpleNamespace


from benchmark import runner
from benchmark.schedule import run_parallel

KEY = "fake-key"
CHILD = r"""
import json, pathlib, sys, time
events, folder, name, fail, secs = sys.argv[1:6]
def note(what):
    with open(events, "a") as f:
        f.write(f"{what} {name}\n")
note("start")
time.sleep(float(secs))
if fail == "1":
    note("end")
    sys.exit(1)
d = pathlib.Path(folder)
d.mkdir(parents=True, exist_ok=True)
(d / "predictions.jsonl").write_text("")
(d / "metrics.json").write_text(json.dumps({"NDCG@10": 0.5}))
(d / "manifest.json").write_text(json.dumps({"config_hash": %r}))
note("end")
""" % KEY


def _plan(root, methods, fail=(), secs=1.0, tag=""):
    """(plan, child_argv, tag) for run_parallel: a plan-like object whose children note their
    start and end in root/events.txt, take `secs` (or secs[method]) and exit 1 for the methods
    in `fail`."""
    plan = SimpleNamespace(methods=list(methods), results_dir=root / (tag or "main"),
                           key=lambda method: KEY)
    events = root / "events.txt"

    def argv(method):
        return [sys.executable, "-c", CHILD, str(events), str(plan.results_dir / method),
                f"{method}@{tag}" if tag else method, "1" if method in fail else "0",
                str(secs[method] if isinstance(secs, dict) else secs)]
    return plan, argv, tag


def _events(root):
    return [tuple(line.split()) for line in (root / "events.txt").read_text().splitlines()]


def test_dependents_start_after_their_dependency_and_independents_run_at_once(tmp_path):
    """SASRec ends long before MiniOneRec: its free slot must not go to LASAR or Explicit CoT,
    which wait for MiniOneRec and then run side by side."""
    secs = {"minionerec": 4.0, "sasrec": 1.0, "lasar": 1.5, "cot_gream": 1.5}
    plan = _plan(tmp_path, ["lasar", "sasrec", "cot_gream", "minionerec"], secs=secs)
    res = run_parallel([plan], jobs=2, threads=1)
    assert all(res[("", m)] == {"NDCG@10": 0.5} for m in plan[0].methods)
    ev = _events(tmp_path)
    at = {e: i for i, e in enumerate(ev)}
    assert len(ev) == 8

    def side_by_side(a, b):                    # both started before either ended
        return max(at[("start", a)], at[("start", b)]) < min(at[("end", a)], at[("end", b)])
    assert side_by_side("minionerec", "sasrec") and side_by_side("lasar", "cot_gream")
    for dependent in ("lasar", "cot_gream"):
        assert at[("start", dependent)] > at[("end", "minionerec")]


def _done(folder, ndcg=0.7):
    """A results folder that is up to date with KEY."""
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("")
    (folder / "metrics.json").write_text(json.dumps({"NDCG@10": ndcg}))
    (folder / "manifest.json").write_text(json.dumps({"config_hash": KEY}))


def test_a_failed_dependency_skips_its_dependents_and_says_so(tmp_path, caplog):
    main = _plan(tmp_path, ["minionerec", "lasar", "cot_gream", "sasrec"], fail={"minionerec"})
    big = _plan(tmp_path, ["minionerec", "lasar"], tag="big")      # Table 5's run: unaffected
    _done(tmp_path / "main" / "cot_gream")                # up to date from an earlier run: kept
    with caplog.at_level(logging.ERROR):
        res = run_parallel([main, big], jobs=2, threads=1)
    assert res[("", "minionerec")] is None and res[("", "lasar")] is None
    assert res[("", "sasrec")] == {"NDCG@10": 0.5} and res[("", "cot_gream")] == {"NDCG@10": 0.7}
    assert res[("big", "minionerec")] == res[("big", "lasar")] == {"NDCG@10": 0.5}
    started = [name for what, name in _events(tmp_path) if what == "start"]
    assert sorted(started) == ["lasar@big", "minionerec", "minionerec@big", "sasrec"]
    assert ("METHOD SKIPPED: lasar: its dependency minionerec failed, so it was not started"
            in caplog.text)
    assert caplog.text.count("METHOD SKIPPED") == 1
    assert not (tmp_path / "main" / "lasar").exists()


def test_the_longest_chain_starts_first(tmp_path):
    """One slot: minionerec (25 min, then LASAR's 25) goes before SASRec (30), which goes
    before GRU4Rec (12), whatever order the plan lists them in."""
    plan = _plan(tmp_path, ["gru4rec", "sasrec", "lasar", "minionerec"], secs=0.1)
    run_parallel([plan], jobs=1, threads=1)
    started = [name for what, name in _events(tmp_path) if what == "start"]
    assert started == ["minionerec", "sasrec", "lasar", "gru4rec"]


class _Settings:
    threads, device = None, "cpu"


def _sequential(tmp_path, monkeypatch, methods, fail, done=()):
    """runner.run_plan over a plan-like object whose run_method fails for `fail`; -> (results,
    methods in the order they were run). Methods in `done` already have up-to-date results."""
    ran = []

    def fake_run_method(plan, name):
        ran.append(name)
        if name in fail:
            raise RuntimeError("boom")
        return {"NDCG@10": 0.5}
    monkeypatch.setattr(runner, "run_method", fake_run_method)
    plan = SimpleNamespace(methods=list(methods), settings=_Settings, results_dir=tmp_path,
                           key=lambda method: KEY, profile="smoke")
    for m in done:
        _done(tmp_path / m)
    return runner.run_plan(plan), ran


def test_sequential_run_puts_dependencies_first_and_skips_after_a_failure(tmp_path, monkeypatch,
                                                                         caplog):
    with caplog.at_level(logging.ERROR):
        res, ran = _sequential(tmp_path, monkeypatch, ["lasar", "sasrec", "minionerec"],
                               fail={"minionerec"})
    assert ran == ["sasrec", "minionerec"]                      # lasar never started
    assert list(res) == ["lasar", "sasrec", "minionerec"]       # reported in the plan's order
    assert res["lasar"] is None and res["minionerec"] is None and res["sasrec"]
    assert ("METHOD SKIPPED: lasar: its dependency minionerec failed, so it was not started"
            in caplog.text)


def test_sequential_run_keeps_up_to_date_results_of_a_dependent(tmp_path, monkeypatch, caplog):
    """A dependent whose results are already up to date keeps them (and is not reported as
    failed) even when its dependency fails this time, as in a parallel run."""
    with caplog.at_level(logging.ERROR):
        res, ran = _sequential(tmp_path, monkeypatch, ["minionerec", "lasar"], {"minionerec"},
                               done=["lasar"])
    assert ran == ["minionerec", "lasar"]          # run_method itself finds lasar up to date
    assert res["lasar"] is not None and "METHOD SKIPPED" not in caplog.text
