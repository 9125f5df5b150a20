"""The one artifact mechanism (protocol/artifact.py): keys from named inputs, inputs.json
beside the payload, built once, staged, resumable, continuable, refreshable, one builder at a
time across processes."""
import json
import multiprocessing as mp
import time

import pytest

from protocol.artifact import Artifact, key_of


def _writer(text):
    def build(folder):
        (folder / "payload.txt").write_text(text)
        return {"n": len(text)}
    return build


def _read(path, info):
    return (path / "payload.txt").read_text(), info



def _own(info):
    """The builder's own info (without `measured`, what the build cost)."""
    return {k: v for k, v in info.items() if k != "measured"}

def test_key_names_its_inputs_and_inputs_json_records_them(tmp_path):
    a = Artifact(tmp_path, "thing", {"lr": 0.1, "data": "abc"})
    assert a.key == key_of("thing", {"data": "abc", "lr": 0.1})          # order-free
    assert a.key != Artifact(tmp_path, "thing", {"lr": 0.2, "data": "abc"}).key
    assert a.key != Artifact(tmp_path, "other", {"lr": 0.1, "data": "abc"}).key
    text, info = a.get(_writer("hello"), _read)
    assert (text, _own(info)) == ("hello", {"n": 5})
    rec = json.loads((a.path / "inputs.json").read_text())
    assert rec["inputs"] == {"lr": 0.1, "data": "abc"} and rec["key"] == a.key
    assert {"git_commit", "created", "packages", "command"} <= set(rec["produced_by"])
    assert _own(json.loads((a.path / "done.json").read_text())["info"]) == {"n": 5}
    assert a.path.name == f"thing-{a.key}" and not a.partial.exists()


def test_a_finished_artifact_is_loaded_not_rebuilt(tmp_path):
    calls = []

    def build(folder):
        calls.append(1)
        return _writer("x")(folder)
    for _ in range(3):
        assert Artifact(tmp_path, "t", {"a": 1}).get(build, _read)[0] == "x"
    assert len(calls) == 1


def test_a_failed_build_leaves_nothing_finished_and_starts_clean(tmp_path):
    art = Artifact(tmp_path, "t", {"a": 1})

    def crash(folder):
        (folder / "half.txt").write_text("half")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        art.get(crash)
    assert not art.path.exists() and not art.done
    seen = []

    def build(folder):
        seen.extend(p.name for p in folder.iterdir())
        return _writer("whole")(folder)
    assert art.get(build, _read)[0] == "whole"
    assert seen == ["inputs.json"]                  # the half-built payload was discarded


def test_a_resumable_build_continues_from_what_a_killed_one_left(tmp_path):
    art = Artifact(tmp_path, "train", {"a": 1}, resumable=True)

    def first(folder):
        (folder / "checkpoint").write_text("step 6")
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        art.get(first)

    def resume(folder):
        return {"from": (folder / "checkpoint").read_text()}
    assert _own(art.get(resume)) == {"from": "step 6"}
    assert (art.path / "checkpoint").is_file()


def test_continuable_inputs_reopen_the_same_folder(tmp_path):
    def run(epochs):
        art = Artifact(tmp_path, "fit", {"lr": 1}, continuable={"epochs": epochs},
                       resumable=True)

        def build(folder):
            done = int((folder / "epochs").read_text()) if (folder / "epochs").exists() else 0
            (folder / "epochs").write_text(str(epochs))
            return {"resumed_at": done, "epochs": epochs}
        return art, art.get(build)
    a2, info2 = run(2)
    a4, info4 = run(4)
    assert a2.path == a4.path                        # the cap is not part of the key
    assert _own(info2) == {"resumed_at": 0, "epochs": 2}
    assert _own(info4) == {"resumed_at": 2, "epochs": 4}
    _, again = run(4)
    assert again == info4                            # same cap: reused
    assert not Artifact(tmp_path, "fit", {"lr": 1}, continuable={"epochs": 2}).done


def test_refresh_measures_again(tmp_path):
    art = Artifact(tmp_path, "bench", {"users": 3})
    assert art.get(_writer("one"), _read)[0] == "one"
    assert art.get(_writer("two"), _read)[0] == "one"
    assert art.get(_writer("two"), _read, refresh=True)[0] == "two"


def _slow_builder(root, log):
    def build(folder):
        with open(log, "a") as f:
            f.write("built\n")
        time.sleep(1.5)
        (folder / "payload.txt").write_text("shared")
        return {}
    text, _ = Artifact(root, "cots", {"k": 1}).get(build, _read)
    assert text == "shared"


def test_two_processes_build_one_artifact_once(tmp_path):
    log = tmp_path / "log.txt"
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_slow_builder, args=(tmp_path / "root", log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text().count("built") == 1       # the second waited, then loaded


def test_a_failed_refresh_keeps_the_finished_artifact(tmp_path):
    art = Artifact(tmp_path, "bench", {"users": 3})
    art.get(_writer("measured"), _read)

    def crash(folder):
        assert not (folder / "payload.txt").exists()     # built anew, not over the old one
        raise RuntimeError("killed")
    with pytest.raises(RuntimeError):
        art.get(crash, refresh=True)
    assert art.done and art.get(_writer("x"), _read)[0] == "measured"


def test_a_stage_starts_by_handing_back_what_earlier_stages_freed(tmp_path):
    """Freed blocks below malloc's mmap threshold stay in the process (a dropped model's
    per-layer tensors): the next build's measurement starts with them returned, so it neither
    holds nor reports them (protocol/measure.py release)."""
    import gc

    from protocol.measure import rss_mb

    if rss_mb() is None:
        pytest.skip("no /proc/self/status")
    held = {}

    def fragment(folder):
        blocks = [bytearray(10_000) for _ in range(30_000)]       # ~300 MB of heap blocks
        held["keep"] = blocks[::100]                              # pin a few: fragmentation
        return {"ok": True}
    Artifact(tmp_path, "frag", {"x": 1}).get(fragment)
    gc.collect()
    before = rss_mb()
    info = Artifact(tmp_path, "next", {"x": 1}).get(lambda folder: {"ok": True})
    # without the release the next stage would start holding the ~300 MB (measured 299 MiB
    # held, 17 after malloc_trim, on glibc 2.36)
    assert info["measured"]["start_rss_mb"] < before - 200


def test_every_build_records_its_wall_time_and_peak_memory(tmp_path):
    """done.json's info holds `measured`: the build's seconds and its own resident-set peak
    (reset at its start: a small build after a large one reports its own, not the large one's);
    a build nested in another hands its peak up to the outer one."""
    import numpy as np

    from protocol.measure import measured

    def big(folder):
        a = np.ones(60_000_000)                       # 458 MiB, touched
        a[::4096] += 1
        return {"ok": True}
    outer = Artifact(tmp_path, "outer", {"x": 1})
    with measured() as m:
        art = Artifact(tmp_path, "big", {"x": 1})
        big_info = art.get(big)
    small = Artifact(tmp_path, "small", {"x": 1}).get(lambda folder: {"ok": True})
    assert big_info["measured"]["peak_rss_mb"] > 458
    if small["measured"]["rss_reset"]:                # Linux: the mark was reset for it
        assert small["measured"]["peak_rss_mb"] < big_info["measured"]["peak_rss_mb"] - 300
    assert m["peak_rss_mb"] >= big_info["measured"]["peak_rss_mb"]      # handed up
    assert outer.get(lambda folder: {"n": 1})["measured"]["seconds"] >= 0
