"""One mechanism for everything cached: SID tables, embeddings, teacher CoTs, segments,
anchors, trained models (SFT, Stage 2, RL, mixed), RecBole runs, bench results.

An artifact is a folder `<root>/<kind>-<key>/`, where the key is a hash of its *named inputs*
(configuration sections, data fingerprints, the keys of the artifacts it was built from). What
changes an artifact is exactly what its inputs name. The folder holds:

  inputs.json   the named inputs and what produced them (git commit, command, packages)
  done.json     written last: the builder's info (timings, curves) with what the build cost
                (`measured`: wall time, peak memory: protocol/measure.py), the mark of completion
  ...           the payload the builder wrote

It is built in `<kind>-<key>.partial/` and renamed into place once complete, so a reader never
sees half of one. A finished artifact that cannot be read back (a file truncated or corrupted
on disk: its loader raises) is built again from scratch, with one logged line; so is one whose
done.json is unreadable. A resumable builder (training) keeps its checkpoints in the partial folder
across kills and continues from them. A finished artifact is loaded, never rebuilt. Builders
of the same artifact in two processes are serialised by a lock (released by the OS if its
holder dies); the second one loads what the first built.

A resumable builder keeps its resume checkpoint in `RESUME_CHECKPOINT/` (a model's weights and
AdamW state: 12 bytes a parameter, 7 GB at Qwen3-0.6B). Nothing reads it once the artifact is
finished, so it is removed then, unless the artifact's inputs are continuable (RecBole's
runs keep theirs elsewhere and continue from it).

`continuable` inputs are recorded but do not key the folder: a training length (RecBole's
epoch cap). A finished artifact whose continuable inputs differ is moved back to its partial
folder and built again from there, so raising a cap continues training instead of restarting.
"""
import fcntl
import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

from .dist import barrier, gather_object, is_main_process
from .errors import BenchmarkError, brief
from .io import atomic_write_json, replace_dir
from .measure import measured

log = logging.getLogger(__name__)
RESUME_CHECKPOINT = "last"        # module docstring


def digest(obj):
    """16 hex digits identifying JSON data (an input too large to name whole: item texts, a
    set of examples)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def key_of(kind, inputs):
    """The key of an artifact of `kind` built from `inputs` (JSON data)."""
    return digest({"kind": kind, "inputs": inputs})


def read_json(path):
    """The JSON content of `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class Artifact:
    """A cached thing keyed by named inputs (see the module docstring)."""

    def __init__(self, root, kind, inputs, continuable=None, resumable=False, collective=False):
        """resumable: the builder continues from what a killed build left in the partial
        folder (training), instead of starting from an empty one; a finished one whose
        continuable inputs changed is reopened there. collective: every process of a
        distributed run builds it together (DDP training, sharded decoding; it must be
        resumable); the main process decides whether it is built (all follow, so none skips
        the others' collectives), only it marks it done, and all wait for that before
        loading (the process group must exist: dist.init). A refreshed or changed
        non-resumable artifact is built anew beside the finished one, which it replaces only
        once complete."""
        if collective and not resumable:
            raise ValueError("a collective artifact must be resumable: every process writes "
                             "into the same partial folder")
        self.root, self.kind, self.inputs = Path(root), kind, inputs
        self.continuable = dict(continuable or {})
        self.resumable, self.collective = resumable, collective
        self.key = key_of(kind, inputs)
        self.path = self.root / f"{kind}-{self.key}"
        self.partial = self.root / f"{kind}-{self.key}.partial"

    def __repr__(self):
        return f"Artifact({self.path})"

    def record(self):
        """done.json of the finished artifact, or None."""
        return read_json(self.path / "done.json")

    def _finished(self, rec):
        return rec is not None and rec.get("continuable", {}) == self.continuable

    @property
    def done(self):
        return self._finished(self.record())

    def info(self):
        return self.record()["info"]

    def get(self, build, load=None, refresh=False):
        """The artifact's value: `load(path, info)` of the finished artifact (default: its
        info), building it first with `build(folder) -> info` when it is not finished.
        refresh=True builds it again even if it is (a measurement asked for again)."""
        load = load or (lambda path, info: info)
        rec = self.record()
        if rec is None and self.path.exists():
            log.warning("%s: done.json is unreadable; building it again", self.path)
        reused = not refresh and self._finished(rec)
        if self.collective:
            reused = gather_object(reused)[0]          # the main process's view
        if reused:
            log.info("reusing %s", self.path)
        else:
            rec = self._make(build, refresh)
        try:
            return load(self.path, rec["info"])
        except Exception as e:
            if not reused or isinstance(e, BenchmarkError):
                raise                         # a loader that fails on what was just built
            log.warning("%s is unreadable (%s); building it again from scratch", self.path,
                        brief(e))             # truncated or corrupt on disk
        if self.collective:
            barrier()                         # every process has failed to read it
        return load(self.path, self._make(build, refresh=True, clean=True)["info"])

    def _make(self, build, refresh, clean=False):
        """Build under the lock unless another process finished it meanwhile (`clean`: remove
        what there is first, checkpoints too). -> done.json's record."""
        with self._lock():
            if clean:
                if is_main_process() or not self.collective:
                    shutil.rmtree(self.path, ignore_errors=True)
                    shutil.rmtree(self.partial, ignore_errors=True)
                if self.collective:
                    barrier()                 # nothing is created before the removal
            todo = refresh or not self.done
            if self.collective:
                todo = gather_object(todo)[0]          # decided under the main one's lock
            if todo:
                self._build(build)
        if self.collective:
            barrier()                         # the main process has marked it done
        return self.record()

    # --- building ---------------------------------------------------------------------------
    def _build(self, build):
        main = is_main_process() or not self.collective
        if main:
            if self.resumable and self.path.exists():   # finished for other continuable
                shutil.rmtree(self.partial, ignore_errors=True)   # inputs: continue it
                os.replace(self.path, self.partial)
            elif not self.resumable:
                shutil.rmtree(self.partial, ignore_errors=True)   # start clean; a finished
            self.partial.mkdir(parents=True, exist_ok=True)       # one stays until replaced
            from .manifest import produced_by
            atomic_write_json(self.partial / "inputs.json",
                              {"kind": self.kind, "key": self.key, "inputs": self.inputs,
                               "continuable": self.continuable, "produced_by": produced_by()})
        elif not self.partial.exists():
            self.partial.mkdir(parents=True, exist_ok=True)
        with measured() as cost:               # wall time and peak memory of this stage
            info = build(self.partial)
        if isinstance(info, dict):
            info = {**info, "measured": cost}
        if main:
            atomic_write_json(self.partial / "done.json",
                              {"info": info, "continuable": self.continuable})
            replace_dir(self.partial, self.path)     # a refreshed artifact's old one goes now
            if self.resumable and not self.continuable:
                shutil.rmtree(self.path / RESUME_CHECKPOINT, ignore_errors=True)
            log.info("built %s", self.path)

    @contextmanager
    def _lock(self):
        if self.collective and not is_main_process():
            yield                             # the main process holds it for everyone
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{self.path.name}.lock", "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info("waiting for another process building %s", self.path)
                fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
