"""The shared configuration (protocol/profiles/defaults.yaml) as typed sections.

Defaults live in the YAML only; these classes are the schema (`schema.build` fills them). The
protocol part (seed, split, SIDs, backbone, metrics) is what methods read and what keys their
results; `threads`, `jobs`, `enabled`, `scaling`, `sensitivity` and `bench_cot` steer the
orchestration only.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from .schema import NonNegFloat, PosFloat, PosInt, Prob, Range, Seed, out_of_range, require


@dataclass(frozen=True)
class EvalConfig:
    ks: list[PosInt]                 # cut-offs of NDCG@K and HR@K (PROTOCOL 4)
    bootstrap_resamples: PosInt      # paired bootstrap over test users (reports only)
    bootstrap_seed: Seed
    rerun_spread: dict[str, NonNegFloat]  # metric -> how far a rerun of the same code and
                                     # seed moved a row (measured); a difference no larger
                                     # is not a finding (reports/verdicts.py)


@dataclass(frozen=True)
class SidsConfig:
    embedder: str                    # 'minilm' or a local sentence-transformers folder
    levels: PosInt
    codes: Annotated[int, Range(2)]  # codes per level
    kmeans_iters: PosInt
    kmeans_restarts: PosInt
    seed: Seed
    embed_batch_size: PosInt


@dataclass(frozen=True)
class LMConfig:
    """The backbone every generative method shares (PROTOCOL 8)."""
    backbone: str                    # random | smollm2 | PATH
    tokenizer_vocab: PosInt
    hidden_size: PosInt
    intermediate_size: PosInt
    num_layers: PosInt
    num_heads: PosInt
    num_kv_heads: PosInt
    max_positions: PosInt
    dtype: Literal["float32", "bfloat16"]
    mixed_precision: Literal["no", "bf16"]
    lora: bool
    lora_r: PosInt
    lora_alpha: PosInt
    lora_dropout: Prob

    def __post_init__(self):
        if self.backbone != "random":            # the sizes shape the random backbone only
            return
        if self.lora:
            raise out_of_range("lora", self.lora, "false with the random backbone: LoRA "
                               "freezes the base weights, and a random base knows nothing; "
                               "give a pretrained one (--backbone PATH or smollm2)")
        require(self.hidden_size % self.num_heads == 0, "hidden_size", self.hidden_size,
                f"a multiple of num_heads ({self.num_heads})")
        require(self.num_heads % self.num_kv_heads == 0, "num_kv_heads", self.num_kv_heads,
                f"a divisor of num_heads ({self.num_heads})")

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
class SensitivityConfig:
    """Labelled sensitivity rows beside the baselines' published strength (reports'
    baseline_strength; never Table 1): some methods again under other settings."""
    enabled: bool
    methods: list[str]
    variants: dict[str, list[str]]   # label -> --set pairs; results/<ds>/<profile>/_sensitivity/
                                     # <label>/


@dataclass(frozen=True)
class BenchCotConfig:
    """Paper Table 4: `bench cot` after the methods."""
    enabled: bool
    users: PosInt
    repeats: PosInt


@dataclass(frozen=True)
class Settings:
    seed: Seed
    eval_seed: Seed | None           # the evaluated users' sample seed; null = seed
    history_len: PosInt
    topk: PosInt                     # at most the catalog (RunContext.topk; plan.py checks)
    max_users: PosInt | None
    threads: PosInt | None
    jobs: PosInt
    device: Literal["cpu", "cuda"]
    dist_timeout_s: PosInt
    memory_limit_gb: PosFloat | None  # the plan's memory per process; null = the device's
    plan_timing: bool                # calibrate the plan's times before a run (estimate.py)
    pretrained_backbone: bool        # the profile needs lm.backbone != random (smol, paper)
    enabled: list[str]
    eval: EvalConfig
    sids: SidsConfig
    lm: LMConfig
    scaling: ScalingConfig
    sensitivity: SensitivityConfig
    bench_cot: BenchCotConfig

    def __post_init__(self):
        require(max(self.eval.ks, default=1) <= self.topk, "eval.ks", self.eval.ks,
                f"cut-offs of at most topk ({self.topk})")

    @property
    def users_seed(self):
        """The seed of every sample of evaluated users (eval_seed, else seed)."""
        return self.seed if self.eval_seed is None else self.eval_seed

    def generative_inputs(self):
        """The shared settings a method on the generative core also reads, as artifact-key
        input: the SID table's and the backbone's."""
        from .schema import to_dict
        return {"sids": to_dict(self.sids), "lm": self.lm.identity()}
