"""The shared configuration (benchmark/profiles/defaults.yaml) as typed sections.

Defaults live in the YAML only; these classes are the schema (`schema.build` fills them). The
protocol part (seed, split, SIDs, backbone, metrics) is what methods read and what keys their
results; `threads`, `jobs`, `enabled`, `scaling` and `bench_cot` steer the orchestration only.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class EvalConfig:
    ks: list[int]                    # cut-offs of NDCG@K and HR@K (PROTOCOL 4)
    bootstrap_resamples: int         # paired bootstrap over test users (reports only)
    bootstrap_seed: int


@dataclass(frozen=True)
class SidsConfig:
    embedder: str                    # 'minilm' or a local sentence-transformers folder
    levels: int
    codes: int
    kmeans_iters: int
    kmeans_restarts: int
    seed: int
    embed_batch_size: int


@dataclass(frozen=True)
class LMConfig:
    """The backbone every generative method shares (PROTOCOL 8)."""
    backbone: str                    # random | smollm2 | PATH
    tokenizer_vocab: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    max_positions: int
    dtype: Literal["float32", "bfloat16"]
    mixed_precision: Literal["no", "bf16"]
    lora: bool
    lora_r: int
    lora_alpha: int
    lora_dropout: float

    def backbone_id(self):
        """What identifies the backbone in artifact keys (a folder path is resolved)."""
        src = self.backbone
        return src if src in ("random", "smollm2") else str(Path(src).expanduser().resolve())

    def identity(self):
        """This section as artifact-key input (the backbone path resolved)."""
        from .schema import to_dict
        return {**to_dict(self), "backbone": self.backbone_id()}


@dataclass(frozen=True)
class ScalingConfig:
    """Paper Table 5: the generative methods again on a larger backbone."""
    enabled: bool
    methods: list[str]
    label: str                       # results/<ds>/<profile>/_scaling/<label>/
    lm: dict                         # lm keys of the larger backbone


@dataclass(frozen=True)
class BenchCotConfig:
    """Paper Table 4: `bench cot` after the methods."""
    enabled: bool
    users: int
    repeats: int


@dataclass(frozen=True)
class Settings:
    seed: int
    history_len: int
    topk: int
    max_users: int | None
    threads: int | None
    jobs: int
    device: Literal["cpu", "cuda"]
    enabled: list[str]
    eval: EvalConfig
    sids: SidsConfig
    lm: LMConfig
    scaling: ScalingConfig
    bench_cot: BenchCotConfig

    def generative_inputs(self):
        """The shared settings a method on the generative core also reads, as artifact-key
        input: the SID table's and the backbone's."""
        from .schema import to_dict
        return {"sids": to_dict(self.sids), "lm": self.lm.identity()}
