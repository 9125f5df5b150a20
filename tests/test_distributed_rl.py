"""RL across processes: under `accelerate launch --num_processes 2` MiniOneRec's GRPO
and LASAR's RL run in both processes, each rolling out its contiguous part of every optimizer
step's global batch, with the gradients summed (methods/lm/grpo.py's docstring). They take the
optimizer steps one process takes on the same global batch: the per-step logs (losses, reward,
hit, LASAR's mean N and baseline) and the validation NDCG@10 curves agree within 1e-4."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import REPO, run_cli, with_sids

# Both RLs after a one-epoch Stage 1 (shared) and Stage 2: 19 prompts in steps of 6, 6, 6 and 1
# prompts. One process cuts a step of 6 into micro-batches of 4 and 2, two processes into 3 and 3
# (each weighted by its share of the 6); the last step's one prompt goes to process 1 alone.
# G = 8, a validation check after every step, a rate at which the steps move the predictions.
RL = {"max_prompts": 19, "batch_size": 6, "micro_batch": 4, "group_size": 8, "eval_every": 1,
      "valid_examples": 20, "lr": 1.0e-3}
ARGS = ("--profile", "smoke", "--methods", "minionerec,lasar", "--set", "threads=1", "--set",
        "jobs=1", "--set", "scaling.enabled=false", "--set", "lasar.studies.enabled=false",
        "--set", "minionerec.sft.epochs=1",
        *[a for m in ("minionerec", "lasar") for k, v in RL.items()
          for a in ("--set", f"{m}.rl.{k}={v}")])
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
          "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
          "--main_process_port", "29573"]


def _args(toy, out):
    return ("run", "toy", "--data-dir", toy / "data", "--out", out, *ARGS)


def _fit_info(out, method):
    return json.loads((out / "toy" / "smoke" / method / "manifest.json").read_text())["fit_info"]


def _rl_log(out, method):
    """{step: logs} of rl_log.jsonl (a step logged twice: the later line)."""
    lines = (Path(_fit_info(out, method)["rl"]["folder"]) / "rl_log.jsonl").read_text()
    return {r["step"]: r for r in map(json.loads, lines.splitlines())}


@pytest.fixture(scope="module")
def one(lm_toy):
    """Both methods in one process: Stage 1, the CoT pool, Stage 2, both RLs."""
    out = with_sids(lm_toy, lm_toy / "rl_one")
    r = run_cli(*_args(lm_toy, out))
    assert r.returncode == 0, r.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def two(lm_toy, one):
    """The same run in two processes, from the one-process run's Stage 1, anchors and Stage 2
    (so both RLs start from the same weights, and the process group is first needed by RL)."""
    out = with_sids(lm_toy, lm_toy / "rl_two", one / "toy" / "_cache")
    for kind in ("sft", "anchors", "lasar-stage2"):
        for d in (one / "toy" / "smoke" / "_work").glob(f"{kind}-*"):
            assert (d / "done.json").is_file(), d
            shutil.copytree(d, out / "toy" / "smoke" / "_work" / d.name)
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    e.pop("LASAR_DATA_DIR", None)
    r = subprocess.run([*LAUNCH, "-m", "benchmark", *map(str, _args(lm_toy, out))], cwd=REPO,
                       env=e, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    for kind in ("sft", "lasar-stage2"):
        assert re.search(rf"reusing \S*/_work/{kind}-", r.stderr), kind
    return out


def _same_steps(one, two, method, keys):
    """The RL of `method` took the same optimizer steps in 1 and 2 processes."""
    i1, i2 = _fit_info(one, method)["rl"], _fit_info(two, method)["rl"]
    assert (i1["processes"], i2["processes"]) == (1, 2)
    assert i1["steps_run"] == i2["steps_run"] == 4
    l1, l2 = _rl_log(one, method), _rl_log(two, method)
    assert sorted(l1) == sorted(l2) == [1, 2, 3, 4]
    for step in l1:
        assert set(keys) <= set(l1[step]) and set(l1[step]) == set(l2[step])
        for k, v in l1[step].items():
            assert l2[step][k] == pytest.approx(v, rel=1e-4, abs=1e-7), (method, step, k)
    c1, c2 = i1["valid_ndcg10_curve"], i2["valid_ndcg10_curve"]
    assert [s for s, _ in c1] == [s for s, _ in c2] == [0, 1, 2, 3, 4]
    for (_, v1), (_, v2) in zip(c1, c2):
        assert v2 == pytest.approx(v1, rel=1e-4, abs=1e-7), method
    # what is compared is not trivial: the steps moved the model away from the reference
    assert len({v for _, v in c1}) > 2 and l1[4]["kl"] > 0 and l1[1]["reward"] > 0
    return l1


def test_minionerec_grpo_in_two_processes_takes_the_one_process_steps(one, two):
    _same_steps(one, two, "minionerec", ("policy", "kl", "reward", "hit"))


def test_lasar_rl_in_two_processes_takes_the_one_process_steps(one, two):
    log = _same_steps(one, two, "lasar", ("policy", "kl", "terminal_kl", "reinforce",
                                          "policy_entropy", "reward", "mean_n", "hit",
                                          "baseline"))
    assert all(1 <= r["mean_n"] for r in log.values())


def test_each_process_gets_a_contiguous_part_of_the_batch(monkeypatch):
    """dist.my_rows: the parts of 0..n-1 in process order, sizes differing by at most one."""
    from protocol import dist
    for n in (1, 5, 8, 9):
        for w in (1, 2, 3):
            monkeypatch.setenv("WORLD_SIZE", str(w))
            parts = []
            for p in range(w):
                monkeypatch.setenv("RANK", str(p))
                parts.append(dist.my_rows(n))
            assert [i for s in parts for i in range(n)[s]] == list(range(n))
            sizes = [s.stop - s.start for s in parts]
            assert max(sizes) - min(sizes) <= 1


def test_sampled_n_follows_the_policy_head_whatever_the_split():
    """LASAR's N ~ pi(. | h_0) by the inverse CDF at per-prompt uniforms fixed by (seed, step):
    a shard's N are the rows of the whole batch's, and their frequencies are pi's."""
    from methods.lasar.rl import sample_n, step_uniforms
    probs = torch.tensor([0.1, 0.5, 0.0, 0.4])
    logits = probs.clamp_min(1e-12).log().expand(20000, 4)
    u = torch.as_tensor(step_uniforms(42, 3, 20000))
    n = sample_n(logits, u)
    assert torch.equal(sample_n(logits[5000:9000], u[5000:9000]), n[5000:9000])
    freq = torch.bincount(n - 1, minlength=4).double() / len(n)
    assert torch.allclose(freq, probs.double(), atol=0.01) and freq[2] == 0
    assert np.array_equal(step_uniforms(42, 3, 8), step_uniforms(42, 3, 20000)[:8])
    assert not np.array_equal(step_uniforms(42, 3, 8), step_uniforms(42, 4, 8))
    assert sample_n(torch.zeros(2, 3), torch.tensor([0.0, 1.0 - 1e-12])).tolist() == [1, 3]
