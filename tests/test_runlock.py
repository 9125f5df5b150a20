"""One run per results folder (benchmark/runlock.py): a second run stops at once naming the
holder; a lock left by a killed run is taken over; the processes of one launch agree."""
import json
import logging
import os
import subprocess
import sys

import pytest

from protocol.errors import BenchmarkError
from benchmark.runlock import NAME, hold

from .conftest import REPO, run_cli, write_dataset

HOLDER = """
import sys, time
from benchmark.runlock import hold
with hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_held_folder_stops_at_once(tmp_path):
    write_dataset(tmp_path / "data", n_users=20, n_items=30)
    folder = tmp_path / "results" / "toy" / "smoke"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = run_cli("run", "toy", "--profile", "smoke", "--methods", "sasrec", "--data-dir",
                    tmp_path / "data", "--out", tmp_path / "results")
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {folder} is in use by another run (pid {holder.pid}")
        assert sorted(p.name for p in folder.iterdir()) == [NAME]      # nothing else written
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_runs_lock_is_taken_over_and_a_clean_exit_leaves_none(tmp_path, caplog):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / NAME).write_text(json.dumps({"pid": 999999, "host": "h", "started": "then",
                                           "command": ["run_all.sh", "sports"]}))
    with caplog.at_level(logging.WARNING), hold(folder):
        owner = json.loads((folder / NAME).read_text())
        assert owner["pid"] == os.getpid()
        with pytest.raises(BenchmarkError, match=f"in use by another run \\(pid {os.getpid()}"):
            with hold(folder):                 # a second holder, even in the same process
                pass
    assert "taking over the run lock" in caplog.text and "pid 999999" in caplog.text
    assert (folder / NAME).read_text() == ""   # released cleanly: nothing stale is left
    caplog.clear()
    with caplog.at_level(logging.WARNING), hold(folder):
        pass
    assert "taking over" not in caplog.text


def test_the_other_processes_of_a_launch_wait_for_the_main_ones_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "launch-a")
    monkeypatch.setenv("RANK", "1")
    folder = tmp_path / "out"
    with pytest.raises(BenchmarkError, match="did not take the run lock"):
        with hold(folder, wait_s=0.5):
            pass
    (folder / NAME).write_text(json.dumps({"pid": 1, "launch": "launch-b"}))   # another launch
    with pytest.raises(BenchmarkError, match="did not take the run lock"):
        with hold(folder, wait_s=0.5):
            pass
    (folder / NAME).write_text(json.dumps({"pid": 1, "launch": "launch-a"}))   # ours
    with hold(folder, wait_s=0.5):
        pass
