"""One run per results folder: `./run_all.sh` holds results/<dataset>/<profile>/.run.lock while
it trains, so a second invocation on the same folder stops at once with one line naming the
process that holds it, instead of training the same methods twice into one folder.

The lock is an OS file lock (flock): the OS releases it when its holder dies, even by SIGKILL,
so a lock left by a killed run is stale and the next run takes it over (and says so). The file
also records who holds it (pid, host, start, command) for the message. Under `accelerate
launch` the main process takes the lock; the other processes of the same launch wait until the
file names their launch, so all of them agree on whether the run goes ahead.
"""
import fcntl
import json
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from protocol.dist import is_main_process, world_size
from protocol.errors import BenchmarkError

log = logging.getLogger(__name__)
NAME = ".run.lock"


def launch_id():
    """What the processes of one `accelerate launch`/torchrun share (None: a single process)."""
    if world_size() <= 1:
        return None
    return (os.environ.get("TORCHELASTIC_RUN_ID")
            or f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}")


def _owner(f):
    f.seek(0)
    try:
        return json.loads(f.read() or "{}")
    except ValueError:
        return {}


def _describe(owner):
    return (f"pid {owner.get('pid', '?')} on {owner.get('host', '?')}, started "
            f"{owner.get('started', '?')}: {' '.join(owner.get('command', [])) or '?'}")


@contextmanager
def hold(folder, wait_s=120.0):
    """Hold the run lock of the results folder `folder` for the block. A folder held by a live
    run: BenchmarkError (one line) before anything is written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    if not is_main_process():                        # the main process of this launch holds it
        deadline = time.monotonic() + wait_s
        while True:
            with open(path, "a+") as f:
                if _owner(f).get("launch") == launch_id():
                    break
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{folder}: the main process of this launch did not take "
                                     f"the run lock {path} within {wait_s:.0f} s")
            time.sleep(0.5)
        yield
        return
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchmarkError(f"{folder} is in use by another run ({_describe(_owner(f))}); "
                                 "wait for it to finish, or give this run another --out") from None
        try:
            stale = _owner(f)
            if stale.get("pid"):
                log.warning("taking over the run lock %s of a run that ended without releasing "
                            "it (%s)", path, _describe(stale))
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                "command": sys.argv, "launch": launch_id()}))
            f.flush()
            yield
        finally:
            f.seek(0)
            f.truncate()                 # released cleanly: nothing stale for the next run
            f.flush()
            fcntl.flock(f, fcntl.LOCK_UN)
