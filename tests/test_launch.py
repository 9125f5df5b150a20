"""`accelerate launch` never hangs: a profile's parallel `jobs` (and Table 5's extra runs) are
set aside under a launch instead of each rank spawning children; a rank that dies ends the
launch with an error, and one that stalls ends it within the process-group timeout
(settings `dist_timeout_s`). Two CPU processes over gloo."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .conftest import REPO, run_cli, with_sids

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
          "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
# the command a new user tried: smoke's jobs: 2 and Table 5's run of MiniOneRec
SMALL = ("--profile", "smoke", "--methods", "minionerec", "--set", "minionerec.rl.enabled=false",
         "--set", "threads=1", "--set", "minionerec.sft.epochs=1",
         "--set", "bench_cot.enabled=false")


def _env():
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    e.pop("LASAR_DATA_DIR", None)
    return e


def _argv(toy, out, port, *extra):
    return [*LAUNCH, "--main_process_port", str(port), "-m", "benchmark", "run", "toy",
            "--data-dir", str(toy / "data"), "--out", str(out), *map(str, extra)]


def test_a_launch_sets_parallel_jobs_aside_and_finishes(lm_toy):
    """Smoke's `jobs: 2` with Table 5's larger-backbone run under a launch of two processes:
    one line says the jobs are set aside, every rank trains both runs in turn, and the
    predictions equal one process's (jobs=1) byte for byte."""
    out = with_sids(lm_toy, lm_toy / "launch_jobs")
    r = subprocess.run(_argv(lm_toy, out, 29581, *SMALL), cwd=REPO, env=_env(),
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "jobs=2 set aside: under accelerate launch (2 processes)" in r.stderr
    one = with_sids(lm_toy, lm_toy / "launch_one")
    r1 = run_cli("run", "toy", "--data-dir", lm_toy / "data", "--out", one, *SMALL,
                 "--set", "jobs=1")
    assert r1.returncode == 0, r1.stderr[-3000:]
    for m in ("minionerec", "_scaling/large/minionerec"):
        a, b = (o / "toy" / "smoke" / m / "predictions.jsonl" for o in (out, one))
        assert a.read_text() == b.read_text(), m


def _start(toy, out, port, *extra):
    """A long launch (LC-Rec's SFT for many epochs) and the two ranks' pids once training has
    begun."""
    proc = subprocess.Popen(_argv(toy, out, port, "--profile", "smoke", "--methods", "lcrec",
                                  "--set", "threads=1", "--set", "lcrec.sft.epochs=200",
                                  "--set", "lcrec.sft.patience=200", *extra),
                            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    work = out / "toy" / "smoke" / "_work"
    while not any(work.glob("sft-*.partial/train_log.jsonl")):   # a training step was taken
        assert proc.poll() is None and time.time() < deadline, "the launch never trained"
        time.sleep(0.5)
    return proc


def _rank_pids(proc):
    """The pids of the launch's two ranks (the launcher's children whose RANK is set; torch's
    elastic agent starts each in a session of its own)."""
    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                          text=True).stdout.split()
    out = {}
    for pid in kids:
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = next((v[5:].decode() for v in env if v.startswith(b"RANK=")), None)
        if rank is not None and b"LOCAL_RANK=" + rank.encode() in env:
            out[rank] = int(pid)
    return out


def _ends_with_an_error(proc, ranks, within):
    """The launch's exit code once it ends (every process killed if it has not within
    `within` seconds: the test then fails)."""
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the launch still waits {within} s after its rank went away")
    finally:
        for pid in [proc.pid, *ranks.values()]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return proc.returncode


def test_a_killed_rank_ends_the_launch(lm_toy):
    proc = _start(lm_toy, with_sids(lm_toy, lm_toy / "launch_kill"), 29583)
    ranks = _rank_pids(proc)
    assert set(ranks) == {"0", "1"}, ranks
    os.kill(ranks["1"], signal.SIGKILL)
    assert _ends_with_an_error(proc, ranks, within=120) != 0


def test_a_stalled_rank_ends_the_launch_within_the_timeout(lm_toy):
    """Rank 1 stopped (alive, silent): rank 0's next collective waits dist_timeout_s (20 s
    here), then raises, and the launch ends with an error."""
    proc = _start(lm_toy, with_sids(lm_toy, lm_toy / "launch_stall"), 29585,
                  "--set", "dist_timeout_s=20")
    ranks = _rank_pids(proc)
    assert set(ranks) == {"0", "1"}, ranks
    os.kill(ranks["1"], signal.SIGSTOP)
    assert _ends_with_an_error(proc, ranks, within=240) != 0
