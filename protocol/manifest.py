"""What produced a result: config, hash, seed, git commit, package versions, hardware."""
import os
import platform
import re
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


def cpu_model():
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_build(torch):
    """The kernels float results depend on: the CPU capability torch dispatches to (AVX2,
    AVX512, ...), its BLAS, oneDNN and OpenMP, from torch's build configuration."""
    show = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=(\w+)", show)
    onednn = re.search(r"MKL-DNN (v[\d.]+)", show)
    mkl = re.search(r"Math Kernel Library Version ([\d.]+)", show)
    return {"torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "blas": blas.group(1) if blas else None,
            "mkl": mkl.group(1) if mkl else None,
            "onednn": onednn.group(1) if onednn else None,
            "openmp": torch.backends.openmp.is_available(),
            "interop_threads": torch.get_num_interop_threads()}


def hardware():
    """What a result's floating-point sums depend on beyond the code: CPU model, torch's CPU
    capability and math libraries, the thread count, the GPU (README: rerun spread)."""
    info = {"platform": platform.platform(), "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "cpu_model": cpu_model()}
    try:
        import torch
        info["torch_threads"] = torch.get_num_threads()
        info.update(_torch_build(torch))
        info["gpu"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
        info["cuda"] = torch.version.cuda
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
