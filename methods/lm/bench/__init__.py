"""Speed benchmarks of the LM core on a randomly initialised model of a preset shape
(`python -m benchmark bench beam|sft`): `beam` (our beam search against HF `generate`), `sft`
(one SFT optimizer step: tokens/s, samples/s, MFU on a GPU); `synthetic` builds their model,
tokenizer and prompts. The command line lives in benchmark/bench/ (the orchestration only calls
these)."""
from typing import NamedTuple


class Preset(NamedTuple):
    """A model shape for the synthetic benchmarks; `vocab`: the vocabulary the model is padded
    to (the real tokenizer's + the 1,024 SID tokens), None = the benchmark tokenizer's own."""
    arch: str             # qwen3 | llama
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int | None


PRESETS = {
    "cpu": Preset("qwen3", 128, 384, 2, 4, 2, 32, 2048 + 1024),  # Sports: 2,048 BPE + SIDs
    "tiny": Preset("qwen3", 32, 64, 1, 4, 2, 8, None),            # tests only
    "smollm2": Preset("llama", 576, 1536, 30, 9, 3, 64, 49152 + 1024),   # SmolLM2-135M
    "qwen3-0.6b": Preset("qwen3", 1024, 3072, 28, 16, 8, 128, 151936 + 1024),
}
ARCH_NAMES = {"qwen3": "Qwen3", "llama": "Llama"}
