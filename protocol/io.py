"""Atomic writes: results are either complete or absent, never half-written. And reading input
text: a file that is not UTF-8 text is one line naming it and the line."""
import gzip
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_open(path, mode="w"):
    """A file object whose content replaces `path` only when the block ends without error
    (a temp file in the same folder, fsync, os.replace); readable by all (0644)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text):
    with atomic_open(path) as f:
        f.write(text)


def atomic_write_json(path, obj, indent=2):
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def _decoded(path, lineno, raw):
    from .errors import InputError
    if b"\0" in raw:
        raise InputError(path, "holds a NUL byte: a binary file, not text; give the UTF-8 text "
                               "file", lineno)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(path, f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column "
                               f"{e.start + 1}); save the file as UTF-8", lineno) from None


def text_lines(path):
    """(line number, line) of a UTF-8 text file (gzipped when its name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            yield lineno, _decoded(path, lineno, raw)


def read_text(path):
    """The whole UTF-8 text of `path` (a bad byte is named with its line)."""
    raw = Path(path).read_bytes()
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        _decoded(path, lineno, line)
    return raw.decode("utf-8")


def jsonl_text(rows):
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)


def replace_dir(new, final):
    """Put the folder `new` in place of `final` whole (the old `final`, if any, is removed
    after the rename)."""
    new, final = Path(new), Path(final)
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def staged_dir(final):
    """Yield a staging folder; on success it replaces `final` whole, on failure it vanishes."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.stage-"))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    replace_dir(stage, final)


def file_sha256(path):
    """sha256 of a file's bytes (hex)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
