"""What produced a result: config, hash, seed, git commit, package versions, hardware."""
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

PACKAGES = ("torch", "transformers", "trl", "peft", "recbole", "numpy", "scipy", "pandas",
            "sentence-transformers", "tokenizers", "accelerate")
REPO = Path(__file__).resolve().parents[1]


def git_commit():
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions():
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def hardware():
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        import torch
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def produced_by():
    """What produced an artifact: time, commit, command and package versions."""
    return {"created": now(), "git_commit": git_commit(), "command": sys.argv,
            "packages": package_versions()}


def build(git_commit_at_start=None, **fields):
    """The manifest. Pass the commit read when the run started: a long run must not record a
    commit made while it was training."""
    return {"created": now(), "git_commit": git_commit_at_start or git_commit(),
            "command": sys.argv, "packages": package_versions(), "hardware": hardware(),
            **fields}
