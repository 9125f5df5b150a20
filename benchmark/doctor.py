"""`python -m benchmark doctor`: what this machine can run, in one table, before a run is
started on it. Each check is one row (ok, warn or FAIL) and every failure one line with what
to do:

  python, torch   versions; a CPU-only torch on a machine with an NVIDIA GPU
  CUDA, driver    the build's CUDA, the driver (nvidia-smi), torch.utils.collect_env's view
  GPU i           name, memory, compute capability, bf16 support
  collectives     a 2-process all-reduce (NCCL across the first two GPUs; gloo on the CPU)
  configuration   the profile, the data and backbone folders it names (the run's own checks,
                  benchmark/plan.py)
  disk            free space under the results folder against what the plan's stages write
  micro-run       one generative method (MiniOneRec: SFT, RL, ranking) trained end to end on
                  this device at the profile's backbone, on a 40-user synthetic dataset, with
                  its wall time and peak memory

The environment table reuses torch.utils.collect_env (as `accelerate env` does).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OK, WARN, FAIL = "ok", "warn", "FAIL"
GiB = 2 ** 30
CUDA_INDEX = "https://download.pytorch.org/whl/cu130"


class Report:
    def __init__(self):
        self.rows, self.fixes = [], []

    def add(self, check, status, detail, fix=None):
        self.rows.append([check, status, detail])
        if status == FAIL or (status == WARN and fix):
            self.fixes.append(f"{'error' if status == FAIL else 'warning'}: {check}: {detail}"
                              + (f" -> {fix}" if fix else ""))

    @property
    def failed(self):
        return any(r[1] == FAIL for r in self.rows)


def nvidia_gpu_present():
    """True when the machine has an NVIDIA driver (whatever torch was built for)."""
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def driver_version():
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return None


def check_environment(rep):
    import torch
    v = sys.version_info
    rep.add("python", OK if v >= (3, 11) else FAIL, sys.version.split()[0],
            "install Python 3.11 or newer")
    rep.add("torch", OK, f"{torch.__version__} (CUDA build: {torch.version.cuda or 'none'})")
    gpu_machine = nvidia_gpu_present()
    if torch.version.cuda is None and gpu_machine:
        rep.add("torch build", FAIL, "this torch is CPU-only but the machine has an NVIDIA GPU",
                f"rm -rf .venv; LASAR_TORCH_INDEX={CUDA_INDEX} ./run_all.sh setup "
                "(README: Installing on a GPU machine)")
    drv = driver_version()
    if gpu_machine or torch.cuda.is_available():
        rep.add("NVIDIA driver", OK if drv else WARN, drv or "nvidia-smi not found",
                "install the NVIDIA driver's utilities to see its version")
    if torch.version.cuda and not torch.cuda.is_available():
        rep.add("CUDA", FAIL if gpu_machine else WARN,
                f"torch built for CUDA {torch.version.cuda} sees no GPU",
                "check the driver (nvidia-smi) supports this CUDA version, and "
                "CUDA_VISIBLE_DEVICES" if gpu_machine else None)
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        p = torch.cuda.get_device_properties(i)
        bf16 = torch.cuda.is_bf16_supported() if i == 0 else p.major >= 8
        rep.add(f"GPU {i}", OK if bf16 else WARN,
                f"{p.name}, {p.total_memory / GiB:.0f} GiB, compute {p.major}.{p.minor}, "
                f"bf16 {'yes' if bf16 else 'no'}",
                None if bf16 else "the paper profile trains in bf16: add --set "
                "lm.mixed_precision=no (slower, more memory)")


def _all_reduce_worker(rank, world, backend, port, q):
    import torch
    import torch.distributed as td
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        from datetime import timedelta
        td.init_process_group(backend, rank=rank, world_size=world, timeout=timedelta(seconds=60))
        dev = f"cuda:{rank}" if backend == "nccl" else "cpu"
        if backend == "nccl":
            torch.cuda.set_device(rank)
        x = torch.full((1024,), float(rank + 1), device=dev)
        td.all_reduce(x)
        q.put((rank, float(x[0])))
        td.destroy_process_group()
    except Exception as e:                      # noqa: BLE001 - reported as the check's line
        q.put((rank, f"{type(e).__name__}: {e}"))


def check_collectives(rep, port=29517):
    """A 2-process all-reduce: NCCL on the first two GPUs, else gloo on the CPU."""
    import torch
    import torch.multiprocessing as mp
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = "nccl" if gpus >= 2 else "gloo"
    if gpus == 1:
        rep.add("NCCL", OK, "one GPU: no collective across GPUs to check")
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t0 = time.time()
    procs = [ctx.Process(target=_all_reduce_worker, args=(r, 2, backend, port, q))
             for r in range(2)]
    for p in procs:
        p.start()
    got = {}
    try:
        for _ in procs:
            r, v = q.get(timeout=120)
            got[r] = v
    except Exception:                           # noqa: BLE001 - a hang is the finding
        pass
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    name = "NCCL (GPUs 0, 1)" if backend == "nccl" else "gloo (2 CPU processes)"
    if got.get(0) == 3.0 and got.get(1) == 3.0:
        rep.add(name, OK, f"all-reduce of 2 processes in {time.time() - t0:.1f} s")
    else:
        bad = next((v for v in got.values() if isinstance(v, str)), "no answer within 120 s")
        rep.add(name, FAIL, f"all-reduce failed: {bad}",
                "NCCL_DEBUG=INFO python -m benchmark doctor shows why; on a single machine "
                "NCCL_P2P_DISABLE=1 often helps" if backend == "nccl" else
                "check that 127.0.0.1 ports are free (MASTER_PORT)")


def check_plan(rep, req):
    """The run's own checks (configuration, data, backbones) and the disk its stages need.
    -> the Plan, or None when it cannot be made."""
    from protocol.errors import BenchmarkError

    from .plan import Plan
    try:
        plan = Plan(req)
    except (BenchmarkError, ValueError, OSError) as e:
        rep.add("configuration", FAIL, str(e).splitlines()[0])
        return None
    s = plan.settings
    rep.add("configuration", OK, f"{req.dataset} ({plan.dataset.n_items:,} items, "
            f"{len(plan.split.test):,} test users), profile {req.profile}, "
            f"backbone {s.lm.backbone}, device {s.device}")
    if s.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            rep.add("device", FAIL, f"profile {req.profile} trains on a GPU and none is visible",
                    "run on a GPU machine, or add --set device=cpu")
    return plan


def disk_need(plan, stages):
    """Bytes the plan's stages to run will write: per LM training stage its best weights, and
    while one trains its resume checkpoint (weights, AdamW state; removed once the stage is
    finished: protocol/artifact.py), the trained parameters only under LoRA."""
    from methods.lm.cost import config_of, shape_of
    lm = plan.settings.lm
    todo = [st for st in stages if st.status != "cached" and st.name not in ("rank",)
            and "decodings" not in st.name and "generation" not in st.name
            and st.memory and "gradients" in st.memory]
    if not todo:
        return 0
    shape = shape_of(config_of(lm), lm)
    saved = shape.trainable if lm.lora else shape.params
    return len(todo) * saved * 4 + saved * (4 + 8)


def check_disk(rep, plan):
    from .estimate import plan_stages
    root = plan.profile_root
    where = next(p for p in [root, *root.parents] if p.exists())
    free = shutil.disk_usage(where).free
    try:
        stages, _, _ = plan_stages(plan, calibrate=False)
        need = disk_need(plan, stages)
    except Exception as e:                      # noqa: BLE001 - reported, the rest goes on
        rep.add("disk", WARN, f"{free / GiB:.0f} GiB free under {where}; the plan's needs "
                f"could not be estimated ({type(e).__name__}: {e})")
        return
    status = OK if free > 1.5 * need else FAIL
    rep.add("disk", status, f"{free / GiB:.1f} GiB free under {where}; the plan's stages write "
            f"~{need / GiB:.1f} GiB", "free space or use --out on a larger disk")


def micro_run(rep, req, timeout_s=600):
    """MiniOneRec end to end (SFT, RL, ranking) on this device and backbone, 40 users."""
    from recdata.synthetic import write_walk_dataset
    with tempfile.TemporaryDirectory(prefix="lasar-doctor-") as tmp:
        write_walk_dataset(Path(tmp) / "data", "doctor", n_users=40, n_items=30)
        args = [sys.executable, "-m", "benchmark", "run", "doctor", "--profile", req.profile,
                "--methods", "minionerec", "--data-dir", str(Path(tmp) / "data"),
                "--out", str(Path(tmp) / "out"), *sum((["--set", o] for o in req.overrides), []),
                "--set", "scaling.enabled=false", "--set", "sensitivity.enabled=false",
                "--set", "bench_cot.enabled=false", "--set", "jobs=1",
                "--set", "minionerec.max_align_items=30",
                "--set", "minionerec.sft.epochs=1", "--set", "minionerec.sft.batch_size=8",
                "--set", "minionerec.sft.micro_batch=8", "--set", "minionerec.sft.valid_examples=8",
                "--set", "minionerec.rl.max_prompts=8", "--set", "minionerec.rl.batch_size=8",
                "--set", "minionerec.rl.micro_batch=4", "--set", "minionerec.rl.valid_examples=8"]
        t0 = time.time()
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s,
                               env=dict(os.environ, LASAR_PROGRESS="off"))
        except subprocess.TimeoutExpired:
            rep.add("micro-run", FAIL, f"MiniOneRec did not finish in {timeout_s} s",
                    "run it yourself to see where it stops: " + " ".join(args[1:]))
            return
        took = time.time() - t0
        if r.returncode != 0:
            last = [x for x in r.stderr.splitlines() if x.strip()][-1:] or ["(no output)"]
            rep.add("micro-run", FAIL, f"MiniOneRec failed: {last[0][:300]}",
                    "run it yourself for the whole log: " + " ".join(args[1:]))
            return
        import json
        man = json.loads((Path(tmp) / "out" / "doctor" / req.profile / "minionerec"
                          / "manifest.json").read_text())
        sft = man["fit_info"]["sft"].get("measured", {})
        peak = sft.get("peak_gpu_mb", sft.get("peak_rss_mb"))
        rep.add("micro-run", OK, f"MiniOneRec (SFT, RL, ranking of 40 users) in {took:.0f} s; "
                f"SFT peak {peak / 1024:.2f} GiB" if peak else f"MiniOneRec in {took:.0f} s")


def doctor(req, micro=True):
    """The checks (module docstring), printed as one table. -> exit code (1 on a FAIL)."""
    from tabulate import tabulate
    rep = Report()
    check_environment(rep)
    check_collectives(rep)
    plan = check_plan(rep, req)
    if plan is not None:
        check_disk(rep, plan)
    if micro and plan is not None and not rep.failed:
        micro_run(rep, req)
    elif micro:
        rep.add("micro-run", WARN, "skipped: fix the failures above first")
    print(tabulate(rep.rows, ["check", "status", "detail"], tablefmt="simple"))
    for line in rep.fixes:
        print(line, file=sys.stderr)
    return 1 if rep.failed else 0
