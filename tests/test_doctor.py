"""`python -m benchmark doctor`: one table of what this machine can run; every failure one
line with what to do."""
from .conftest import run_cli


def test_doctor_on_this_machine(toy_data):
    """On the CPU with the smoke profile: the environment, a 2-process gloo all-reduce, the
    configuration and data, the disk and MiniOneRec's micro-run all pass."""
    data, name = toy_data
    r = run_cli("doctor", name, "--profile", "smoke", "--data-dir", data,
                "--out", data.parent / "results")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    rows = {line.split("  ")[0]: line for line in r.stdout.splitlines()}
    for check in ("python", "torch", "gloo (2 CPU processes)", "configuration", "disk",
                  "micro-run"):
        assert check in rows and " ok " in rows[check], (check, r.stdout)
    assert "MiniOneRec (SFT, RL, ranking of 40 users)" in rows["micro-run"]
    assert not (data.parent / "results").exists()      # the micro-run wrote elsewhere


def test_a_cpu_only_torch_on_a_gpu_machine_is_named_with_the_fix(monkeypatch):
    import torch

    from benchmark import doctor
    monkeypatch.setattr(doctor, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(doctor, "driver_version", lambda: "580.65.06")
    monkeypatch.setattr(torch.version, "cuda", None)
    rep = doctor.Report()
    doctor.check_environment(rep)
    assert rep.failed
    line = next(f for f in rep.fixes if "CPU-only" in f)
    assert line.startswith("error: torch build:") and "LASAR_TORCH_INDEX=" in line


def test_missing_data_fails_in_one_line_and_skips_the_micro_run(tmp_path):
    r = run_cli("doctor", "toy", "--profile", "smoke", "--data-dir", tmp_path / "nowhere",
                "--out", tmp_path / "results")
    assert r.returncode == 1
    errors = [x for x in r.stderr.splitlines() if x.startswith("error: configuration")]
    assert len(errors) == 1 and "nowhere" in errors[0], r.stderr
    assert "skipped: fix the failures above first" in r.stdout
