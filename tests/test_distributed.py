"""Every stage across processes (`accelerate launch`, two CPU processes over gloo): decoding
is shared out by whole batches and gathered back in order (methods/lm/decode.py sharded_rows),
so ranking, LASAR's studies, Explicit CoT's CoT generation and `bench cot` give byte-identical
rows to one process at the same thread count; LASAR's extra trainings (Stage-2 variants, the
mixed variant), its CoTs and anchors are built by both processes together; more processes
than test users is one line before any work."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from .conftest import REPO, run_cli, with_sids, write_dataset

# LC-Rec, LASAR (studies on: two alignments, two Force-N rows, the mixed variant; sampled N;
# Stage 2 in 4 steps of 16 examples, evaluated every 2; Stage 1 and the mixed route, which takes
# Stage 1's eval_every, every 3) and Explicit CoT on a one-epoch Stage 1,
# decoding batches of 4 (40 test users: 10 batches)
SETTINGS = (
    "--profile", "smoke", "--methods", "lcrec,lasar,cot_gream",
    "--set", "threads=1", "--set", "jobs=1", "--set", "scaling.enabled=false",
    "--set", "minionerec.sft.epochs=1", "--set", "minionerec.sft.eval_every=3",
    "--set", "lcrec.sft.epochs=1",
    "--set", "lcrec.eval_batch=4", "--set", "lasar.eval_batch=4",
    "--set", "lasar.pool_examples=64", "--set", "lasar.rl.enabled=false",
    "--set", "lasar.stage2.batch_size=16", "--set", "lasar.stage2.micro_batch=8",
    "--set", "lasar.stage2.eval_every=2",
    "--set", "lasar.inference.n_mode=sample",
    "--set", "lasar.studies={eval_users: 20, alignments: [none, kl], force_n: [1, 2], "
             "rl_ablation: false, mixed: true, detached_stage2: false}",
    "--set", "lasar.mixed.lr_scales=[1]",
    "--set", "cot_gream.pool_examples=64", "--set", "cot_gream.cot_generation.batch=4",
    "--set", "cot_gream.studies.eval_users=20", "--set", "bench_cot.users=20")
TIMES = {"seconds", "ms_per_user", "time_ratio_vs_plain", "cot_over_direct_time"}


def _launch(toy, out, *args):
    """`python -m benchmark run toy ...` under `accelerate launch` with two processes."""
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    e.pop("LASAR_DATA_DIR", None)
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", "29563"]
    return subprocess.run([*launcher, "-m", "benchmark", "run", "toy", "--data-dir",
                           toy / "data", "--out", out, *SETTINGS, *args], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=900)


def _root(out):
    return out / "toy" / "smoke"


def _text(out, *path):
    return (_root(out).joinpath(*path)).read_text()


def _json(out, *path):
    return json.loads(_text(out, *path))


def _untimed(obj):
    """A result without its wall times (they differ from run to run)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k not in TIMES}
    return obj


def _artifacts(folder, kind=None):
    """The finished artifacts of `kind` (all kinds when None) in `folder`."""
    return [d for d in sorted(folder.iterdir()) if d.is_dir() and (d / "done.json").is_file()
            and (kind is None or d.name.rsplit("-", 1)[0] == kind)]


def _copy(src, dst, *kinds):
    """The trained artifacts `kinds` of the run `src` (all but the bench results when none
    are named) into the run folder `dst`. -> dst"""
    for d in _artifacts(_root(src) / "_work"):
        kind = d.name.rsplit("-", 1)[0]
        if kind in kinds or (not kinds and kind != "bench-cot"):
            shutil.copytree(d, _root(dst) / "_work" / d.name)
    return dst


@pytest.fixture(scope="module")
def one(lm_toy):
    """The three methods in one process (and `bench cot`, which the pipeline runs after)."""
    out = with_sids(lm_toy, lm_toy / "dist_one")
    r = run_cli("run", "toy", "--data-dir", lm_toy / "data", "--out", out, *SETTINGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_two_processes_rank_decode_and_bench_byte_identically_to_one(lm_toy, one):
    """The trained models reused, two processes share out every decoding: the same
    predictions (LASAR's sampled N too: drawn per batch), study rows and `bench cot` rows."""
    out = _copy(one, with_sids(lm_toy, lm_toy / "dist_two", _root(one).parent / "_cache"))
    r = _launch(lm_toy, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "SFT step" not in r.stderr                                # nothing trained again
    for m in ("lcrec", "lasar", "cot_gream"):
        assert _text(out, m, "predictions.jsonl") == _text(one, m, "predictions.jsonl"), m
    steps = [json.loads(l)["latent_steps"] for l in _text(out, "lasar", "predictions.jsonl")
             .splitlines()]
    assert len(set(steps)) > 1                                       # N really was sampled
    for m in ("lasar", "cot_gream"):
        assert _untimed(_json(out, m, "studies.json")) == _untimed(_json(one, m, "studies.json"))
    b1, b2 = _json(one, "bench", "cot.json"), _json(out, "bench", "cot.json")
    assert (b1["processes"], b2["processes"]) == (1, 2)
    for k in ("metrics", "mean_latent_steps", "mean_reasoning_tokens", "test_user_ids"):
        assert b2[k] == b1[k], k
    for m in ("lcrec", "lasar", "cot_gream"):
        assert _json(out, m, "manifest.json")["timings"]["processes"] == 2


def test_lasar_trains_its_pool_stage2_and_studies_with_two_processes(lm_toy, one):
    """From Stage 1 on, two processes build the CoTs and anchors together (the same bytes as
    one process), train Stage 2, its alignment variant and the mixed variant with DDP (the same
    validation curves); the main process writes studies.json."""
    out = _copy(one, with_sids(lm_toy, lm_toy / "dist_ddp"), "sft")
    r = _launch(lm_toy, out, "--methods", "lasar")
    assert r.returncode == 0, r.stderr[-3000:]
    for kind in ("cot", "segments", "anchors", "lasar-stage2", "lasar-mixed"):
        assert re.search(rf"built \S*/{kind}-\w+\n", r.stderr), kind   # here, not copied
    s1, s2 = _json(one, "lasar", "studies.json"), _json(out, "lasar", "studies.json")
    assert set(s2["rows"]) == set(s1["rows"]) == {
        "pure_sft", "sft_align_none", "sft_align_kl", "adaptive", "adaptive_argmax", "force_1",
        "force_2", "mixed_x1"}
    assert _untimed(s2["rows"]["pure_sft"]) == _untimed(s1["rows"]["pure_sft"])   # Stage 1
    # DDP sums the gradient in another order, so the models may differ in the last bits:
    # Figure 3's validation curves, not the predictions, are compared
    for c1, c2 in ((s1["figure3"]["stage2"], s2["figure3"]["stage2"]),
                   (s1["figure3"]["mixed"][0]["curve"], s2["figure3"]["mixed"][0]["curve"])):
        assert len(c1) == len(c2) > 1
        for (a, l1), (b, l2) in zip(c1, c2):
            assert a == b and l1 == pytest.approx(l2, rel=1e-4)
    i1, i2 = (_json(o, "lasar", "manifest.json")["fit_info"] for o in (one, out))
    assert (i1["stage2"]["processes"], i2["stage2"]["processes"]) == (1, 2)
    (a,), (b,) = (_artifacts(_root(o).parent / "_cache", "cot") for o in (one, out))
    assert (a / "cots.jsonl").read_text() == (b / "cots.jsonl").read_text()
    (a,), (b,) = (_artifacts(_root(o) / "_work", "anchors") for o in (one, out))
    v1, v2 = (torch.load(d / "anchors.pt", weights_only=True) for d in (a, b))
    assert a.name == b.name and torch.equal(v1["vectors"], v2["vectors"])
    assert len(_text(out, "lasar", "predictions.jsonl").splitlines()) == 40


def test_more_processes_than_test_users_is_one_line(tmp_path):
    write_dataset(tmp_path / "data", n_users=2)
    r = run_cli("run", "toy", "--profile", "smoke", "--methods", "sasrec", "--data-dir",
                tmp_path / "data", "--out", tmp_path / "results", env={"WORLD_SIZE": "3"})
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: 3 processes") and "2 test users" in lines[0]
    assert not (tmp_path / "results").exists()
