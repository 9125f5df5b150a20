"""Resuming inside each later training stage: a run killed right after one stage's checkpoint
(a checkpoint hook, tests/crash_run.py "<artifact kind>:<step>") and started
again ends where an uninterrupted run ends: the same predictions, validation curves and per-step
RL logs. LC-Rec's (MiniOneRec's) SFT: tests/test_lm_train.py."""
import json
import re
import shutil
from pathlib import Path

import pytest

from .conftest import run_cli, with_sids

SMOKE = ("--profile", "smoke", "--set", "threads=1", "--set", "scaling.enabled=false")
# LASAR on a one-epoch Stage 1, with checkpoints every 2 Stage-2 steps and every RL step
LASAR = ("--methods", "lasar", "--set", "lasar.studies.enabled=false", "--set",
         "minionerec.rl.enabled=false", "--set", "minionerec.sft.epochs=1", "--set",
         "lasar.stage2.eval_every=2", "--set", "lasar.rl.eval_every=1")
# MiniOneRec's GRPO: 3 steps (96 prompts, 32 a step), a checkpoint after each; LoRA on a saved
# tiny Qwen3 (conftest.tiny_qwen_folder), so its dropout draws from torch's random state; a
# rate at which every step moves the predictions
MINIONEREC = ("--methods", "minionerec", "--set", "minionerec.sft.epochs=1", "--set",
              "lm.lora=true", "--set", "minionerec.rl.max_prompts=96", "--set",
              "minionerec.rl.eval_every=1", "--set", "minionerec.rl.lr=1.0e-3")


def _run(toy, out, args, crash=None):
    with_sids(toy, out)
    return run_cli("run", "toy", *SMOKE, "--data-dir", toy / "data", "--out", out, *args,
                   crash=crash)


def _profile(out):
    """The run's results folder: smoke, or smoke@<backbone> (benchmark/plan.py)."""
    return next(p for p in (out / "toy").iterdir() if p.name.startswith("smoke"))


def _root(out, method):
    return _profile(out) / method


def _fit_info(out, method):
    return json.loads((_root(out, method) / "manifest.json").read_text())["fit_info"]


def _rl_log(out, method):
    """The per-step RL log: {step: logs} (a step logged twice: the later line)."""
    lines = (Path(_fit_info(out, method)["rl"]["folder"]) / "rl_log.jsonl").read_text()
    return {r["step"]: r for r in map(json.loads, lines.splitlines())}


def _predictions(out, method):
    return (_root(out, method) / "predictions.jsonl").read_text()


def _killed_then_resumed(toy, out, args, method, crash):
    """Run until `crash` kills it, check it left no results, run again. -> stderr of the rerun."""
    r = _run(toy, out, args, crash)
    assert r.returncode == 3, r.stderr[-3000:]                 # died at the crash point
    assert not _root(out, method).exists()                    # nothing half-written
    r = _run(toy, out, args)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stderr


def _reuse(src, dst, *kinds):
    """Copy the finished artifacts of `kinds` from run folder `src`'s _work/ into `dst`'s (what
    the resumed stage starts from: trained once, by the uninterrupted run)."""
    for kind in kinds:
        for d in (_profile(src) / "_work").glob(f"{kind}-*"):
            assert (d / "done.json").is_file(), d
            shutil.copytree(d, dst / "toy" / _profile(src).name / "_work" / d.name)


@pytest.fixture(scope="module")
def lasar_run(lm_toy):
    """An uninterrupted LASAR run (Stage 1, pool, Stage 2, RL)."""
    out = lm_toy / "lasar_whole"
    r = _run(lm_toy, out, LASAR)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_killed_lasar_stage2_resumes_to_the_uninterrupted_predictions(lm_toy, lasar_run):
    """Killed after Stage 2's checkpoint at step 2 of 4 (Stage 1 and the pool reused, RL still
    to come): the resumed Stage 2 restores weights, Policy Head, optimizer, schedule and early
    stopping, so its validation curve, the RL after it and the predictions are the same."""
    out = lm_toy / "lasar_s2"
    _reuse(lasar_run, with_sids(lm_toy, out, lasar_run / "toy" / "_cache"), "sft", "anchors")
    err = _killed_then_resumed(lm_toy, out, LASAR, "lasar", "lasar-stage2:2")
    assert re.search(r"resuming SFT from \S*/_work/lasar-stage2-\w+\.partial/last at step 2", err)
    assert re.search(r"reusing \S*/_work/sft-", err)                       # Stage 1 reused
    whole, resumed = _fit_info(lasar_run, "lasar"), _fit_info(out, "lasar")
    assert whole["stage2"]["steps_run"] == 4
    assert resumed["stage2"]["valid_loss_curve"] == whole["stage2"]["valid_loss_curve"]
    assert _rl_log(out, "lasar") == _rl_log(lasar_run, "lasar")
    assert _predictions(out, "lasar") == _predictions(lasar_run, "lasar")


def test_killed_lasar_rl_resumes_like_an_uninterrupted_run(lm_toy, lasar_run):
    """LASAR's RL killed after a checkpoint resumes with its reward baseline (its sampled N
    needs no state: seed, step and row fix it): the same per-step log and predictions as an
    uninterrupted run."""
    out = lm_toy / "lasar_rl"
    _reuse(lasar_run, with_sids(lm_toy, out, lasar_run / "toy" / "_cache"), "sft", "anchors",
           "lasar-stage2")
    err = _killed_then_resumed(lm_toy, out, LASAR, "lasar", "lasar-rl:1")
    assert "resuming RL" in err and "at step 1" in err
    assert len(_rl_log(lasar_run, "lasar")) == 2
    assert _rl_log(out, "lasar") == _rl_log(lasar_run, "lasar")
    assert _predictions(out, "lasar") == _predictions(lasar_run, "lasar")


def test_killed_minionerec_grpo_resumes_like_an_uninterrupted_run(lm_toy, tiny_qwen_folder):
    """MiniOneRec's GRPO killed after its checkpoint at step 1 of 3 (its SFT model reused)
    resumes with optimizer, schedule and torch's random state (LoRA dropout): the same
    per-step rewards and losses, validation curve and predictions."""
    whole, out = lm_toy / "mor_whole", lm_toy / "mor_rl"
    args = MINIONEREC + ("--backbone", str(tiny_qwen_folder))
    r = _run(lm_toy, whole, args)
    assert r.returncode == 0, r.stderr[-3000:]
    _reuse(whole, with_sids(lm_toy, out), "sft")
    err = _killed_then_resumed(lm_toy, out, args, "minionerec", "rl:1")
    assert "resuming RL" in err and "at step 1" in err
    log = _rl_log(whole, "minionerec")
    assert sorted(log) == [1, 2, 3] and {"policy", "kl", "reward", "hit"} <= set(log[1])
    assert _rl_log(out, "minionerec") == log
    assert (_fit_info(out, "minionerec")["rl"]["valid_ndcg10_curve"]
            == _fit_info(whole, "minionerec")["rl"]["valid_ndcg10_curve"])
    assert _predictions(out, "minionerec") == _predictions(whole, "minionerec")


# LatentR3 on a one-epoch Stage 1: SFT checkpoints every 2 steps, RL's every step (3 steps of
# 32 prompts) at a high rate
LATENTR3 = ("--methods", "latentr3", "--set", "latentr3.studies.enabled=false", "--set",
            "minionerec.rl.enabled=false", "--set", "minionerec.sft.epochs=1", "--set",
            "latentr3.sft.eval_every=2", "--set", "latentr3.sft.epochs=1", "--set",
            "latentr3.rl.eval_every=1", "--set", "latentr3.rl.max_prompts=96", "--set",
            "latentr3.rl.lr=1.0e-2")


def test_killed_latentr3_sft_and_rl_resume_like_an_uninterrupted_run(lm_toy):
    """LatentR3 killed after its SFT checkpoint at step 2, then (SFT reused) after its RL
    checkpoint at step 1: each resumed stage ends where the uninterrupted run ends (SFT's
    validation curve; RL's per-step log, whose noise needs no state: seed and step fix it;
    the predictions)."""
    whole, sft, rl = lm_toy / "r3_whole", lm_toy / "r3_sft", lm_toy / "r3_rl"
    r = _run(lm_toy, whole, LATENTR3)
    assert r.returncode == 0, r.stderr[-3000:]
    _reuse(whole, with_sids(lm_toy, sft, whole / "toy" / "_cache"), "sft")
    err = _killed_then_resumed(lm_toy, sft, LATENTR3, "latentr3", "latentr3-sft:2")
    assert re.search(r"resuming SFT from \S*/_work/latentr3-sft-\w+\.partial/last at step 2", err)
    assert (_fit_info(sft, "latentr3")["sft"]["valid_loss_curve"]
            == _fit_info(whole, "latentr3")["sft"]["valid_loss_curve"])
    assert _predictions(sft, "latentr3") == _predictions(whole, "latentr3")
    _reuse(whole, with_sids(lm_toy, rl, whole / "toy" / "_cache"), "sft", "latentr3-sft")
    err = _killed_then_resumed(lm_toy, rl, LATENTR3, "latentr3", "latentr3-rl:1")
    assert "resuming RL" in err and "at step 1" in err
    log = _rl_log(whole, "latentr3")
    assert sorted(log) == [1, 2, 3] and {"policy", "reward", "clean_reward"} <= set(log[1])
    assert _rl_log(rl, "latentr3") == log
    assert _predictions(rl, "latentr3") == _predictions(whole, "latentr3")
