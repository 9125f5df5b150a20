"""The plan before the work (benchmark/estimate.py, methods/lm/cost.py): the model's size as
the methods build it, the memory arithmetic against what a step really holds, the largest
micro-batch that fits against a brute-force search, `--dry-run` training and writing nothing,
a setting that cannot fit refused before any work, and a real run's plan.json set against what
each stage measured (tables/estimates.md)."""
import json
from types import SimpleNamespace as NS

import pytest
import torch

from .conftest import run_cli, with_sids


def _cfg(tied=True, vocab=1000):
    from transformers import Qwen3Config
    return Qwen3Config(vocab_size=vocab, hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       head_dim=16, tie_word_embeddings=tied)


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("tied", [False, True])
def test_shape_counts_what_the_methods_build(lora, tied):
    """shape_of (on the meta device) counts the parameters and the trainable ones of the model
    the methods build for real: ties kept, LoRA's adapters and its one trained copy of a tied
    embedding."""
    from transformers import AutoModelForCausalLM

    from methods.lm.backbone import add_lora
    from methods.lm.cost import shape_of
    lm = NS(lora=lora, lora_r=8, lora_alpha=16, lora_dropout=0.0, dtype="float32")
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(_cfg(tied))
    if lora:
        m = add_lora(m, lm)
    sh = shape_of(_cfg(tied), lm)
    assert sh.params == sum(p.numel() for p in m.parameters())
    assert sh.trainable == sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_training_memory_against_a_real_step():
    """The estimate of one full fine-tuning step's weights, gradients and AdamW state equals the
    bytes the real tensors hold after a step (hand count: 4 + 4 + 8 bytes per parameter)."""
    from transformers import AutoModelForCausalLM

    from methods.lm.cost import shape_of, training_memory
    lm = NS(lora=False, dtype="float32")
    m = AutoModelForCausalLM.from_config(_cfg())
    opt = torch.optim.AdamW(m.parameters())
    m(input_ids=torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss.backward()
    opt.step()
    held = {"weights": sum(p.numel() * p.element_size() for p in m.parameters()),
            "gradients": sum(p.grad.numel() * p.grad.element_size() for p in m.parameters()),
            "optimizer": sum(t.numel() * t.element_size() for s in opt.state.values()
                             for t in s.values() if t.dim() > 0)}
    est = training_memory(shape_of(_cfg(), lm), 1, 3, 3)
    assert {k: est[k] for k in held} == held


def test_largest_micro_batch_that_fits_against_brute_force():
    from methods.lm.cost import largest_micro_batch_that_fits
    for a, b, limit, below in [(100, 7, 1000, 1024), (100, 7, 107, 64), (100, 7, 99, 8),
                               (0, 1, 10 ** 6, 4096), (5, 3, 29, 8), (5, 3, 29, 4)]:
        def at(m):
            return a + b * m
        want = max([m for m in range(1, below) if at(m) <= limit and m & (m - 1) == 0],
                   default=0)
        assert largest_micro_batch_that_fits(limit, at, below) == want


def test_dry_run_plans_every_stage_and_writes_nothing(lm_toy):
    out = with_sids(lm_toy, lm_toy / "dry")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    r = run_cli("run", "toy", "--profile", "smoke", "--dry-run", "--data-dir",
                lm_toy / "data", "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    for m, stage in [("minionerec", "stage 1 SFT"), ("minionerec", "GRPO"), ("lcrec", "SFT"),
                     ("lasar", "CoT pool"), ("lasar", "stage 2"), ("lasar", "RL"),
                     ("lasar", "study: mixed route x1"),
                     ("cot_gream", "CoT SFT"), ("latentr3", "thought RL"),
                     ("sasrec", "train (RecBole)")]:
        assert any(line.startswith(m) and stage in line for line in r.stderr.splitlines()), \
            (m, stage)
    assert "plan of " in r.stderr and "_scaling/large" in r.stderr     # Table 5's run too
    assert "calibrated on cpu" in r.stderr and "measured by an earlier plan" not in r.stderr
    # nothing is written but the calibration, under _cache/, which the next plan reuses
    after = [p.relative_to(out) for p in out.rglob("*")]
    assert sorted(p for p in after
                  if not any(x.lstrip(".").startswith("calibration-") for x in p.parts)) == before
    cals = sorted((out / "toy" / "_cache").glob("calibration-*/done.json"))
    assert len(cals) == 2                              # the main plan's and Table 5's shapes
    again = run_cli("run", "toy", "--profile", "smoke", "--dry-run", "--data-dir",
                    lm_toy / "data", "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    def cal_lines(res):
        return [x.split("calibrated on ")[1] for x in res.stderr.splitlines()
                if "calibrated on cpu" in x]
    note = " (measured by an earlier plan, _cache/calibration-*)"
    assert all(note in x for x in cal_lines(again))
    assert [x.replace(note, "") for x in cal_lines(again)] == cal_lines(r)   # the same numbers


def test_a_stage_that_cannot_fit_is_refused_before_any_work(lm_toy):
    """A memory limit below what a stage needs: the run stops before training with the stage,
    its micro-batch and the largest one that fits, and writes no method folder."""
    out = with_sids(lm_toy, lm_toy / "too_big")
    # 65,536 rows a micro-batch: their activations alone are ~60 GB at this shape
    args = ("run", "toy", "--profile", "smoke", "--methods", "minionerec", "--data-dir",
            lm_toy / "data", "--out", out, "--set", "scaling.enabled=false",
            "--set", "minionerec.sft.micro_batch=65536",
            "--set", "minionerec.sft.batch_size=65536", "--set", "memory_limit_gb=4")
    dry = run_cli(*args, "--dry-run")
    r = run_cli(*args)
    for res in (dry, r):
        assert res.returncode != 0
        line = [x for x in res.stderr.splitlines() if "micro_batch 65536 needs" in x]
        assert line and "minionerec stage 1 SFT" in line[0], res.stderr[-2000:]
        assert "this device has 4 GiB" in line[0]
    assert not (out / "toy" / "smoke" / "minionerec").exists()
    assert not list((out / "toy" / "smoke").glob("_work/sft-*"))
    fits = int(line[0].split("; ")[-1].split()[0])          # "...; 1024 fits"
    assert 1 <= fits < 65536


def test_a_run_sets_its_plan_against_what_each_stage_measured(lm_toy):
    """plan.json is written before the work; tables/estimates.md shows, for the trained stages,
    an estimated and a measured time and memory."""
    out = with_sids(lm_toy, lm_toy / "planned")
    r = run_cli("run", "toy", "--profile", "smoke", "--methods", "minionerec", "--data-dir",
                lm_toy / "data", "--out", out, "--set", "scaling.enabled=false",
                "--set", "minionerec.rl.enabled=false", "--set", "bench_cot.enabled=false")
    assert r.returncode == 0, r.stderr[-3000:]
    root = out / "toy" / "smoke"
    plan = json.loads((root / "plan.json").read_text())
    stages = {(s["method"], s["name"]): s for s in plan["stages"]}
    sft = stages[("minionerec", "stage 1 SFT")]
    assert sft["status"] == "to run" and sft["seconds"] > 0 and sft["memory"]["total"] > 0
    from reports.estimates import estimate_rows
    from reports.results import load_results
    from protocol.settings import EvalConfig
    rows = estimate_rows(load_results(root, EvalConfig([10], 10, 0, {})))
    sft_row = next(x for x in rows if x["stage"] == "stage 1 SFT")
    man = json.loads((root / "minionerec" / "manifest.json").read_text())
    assert sft_row["meas_s"] == man["fit_info"]["sft"]["measured"]["seconds"] > 0
    assert sft_row["meas_mib"] == man["fit_info"]["sft"]["measured"]["peak_rss_mb"] > 0
    assert 0 < sft_row["start_mib"] <= sft_row["meas_mib"]        # the RSS the stage began with
    rank = next(x for x in rows if x["stage"] == "rank")
    assert rank["meas_s"] == man["timings"]["rank_s"]
    text = (root / "tables" / "estimates.md").read_text()
    assert "stage 1 SFT" in text and "measured" in text
    assert "Estimated vs measured cost per stage" in (root / "report.md").read_text()
