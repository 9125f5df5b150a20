"""LASAR's configuration schema (defaults and comments: methods/configs/lasar.yaml; paper
Table 7). Explicit CoT shares the teacher section."""
from dataclasses import dataclass
from typing import Literal

from ..lm.config import GRPOConfig, SFTConfig

Alignment = Literal["kl", "cosine", "mse", "none"]


@dataclass(frozen=True)
class TeacherConfig:
    """Where the teacher CoTs come from (PROTOCOL 6; methods/lasar/teacher.py)."""
    kind: Literal["template", "import", "local"]
    import_path: str | None           # JSONL of {"user", "target", "cot"} (kind: import)
    local_model: str                  # local instruct model folder or 'smollm2' (kind: local)
    local_batch: int
    local_max_new_tokens: int


@dataclass(frozen=True)
class SegmentationConfig:
    embedder: str                     # sentence-embedding model (paper: bge-small-en-v1.5)
    threshold: float                  # boundary where neighbours' cosine similarity < this
    batch_size: int


@dataclass(frozen=True)
class Stage2Config(SFTConfig):
    """Latent loop + alignment + Policy Head CE (Section 2.3) on the SFT loop."""
    align: Alignment                  # Table 2's variants
    align_weight: float               # alpha_align
    policy_weight: float              # beta_policy


@dataclass(frozen=True)
class MixedConfig:
    """Single-stage variant (Figure 3): Stage 2's settings with these."""
    lr: float
    epochs: int


@dataclass(frozen=True)
class LasarRLConfig(GRPOConfig):
    """Section 2.4: GRPO + terminal KL + REINFORCE."""
    terminal_kl: bool
    terminal_kl_weight: float         # gamma_KL
    reinforce: bool
    reinforce_coef: float             # gamma_RF
    step_penalty: float               # lambda
    entropy_coef: float               # eta (paper: not given)
    ema_decay: float                  # b_EMA <- decay * b_EMA + (1 - decay) * mean R_group


@dataclass(frozen=True)
class InferenceConfig:
    n_mode: Literal["argmax", "sample"]
    force_n: int | None               # 1..n_max: Force-N


@dataclass(frozen=True)
class LasarStudiesConfig:
    enabled: bool
    eval_users: int | None            # fixed-seed subsample of test users; null = all
    alignments: list[Alignment]
    rl_ablation: bool
    force_n: list[int]
    mixed: bool


@dataclass(frozen=True)
class LasarConfig:
    eval_batch: int
    n_max: int                        # N_max, the Policy Head's output size
    policy_hidden: int
    detach_policy_input: bool
    pool_examples: int | None         # training examples given a teacher CoT; null = all
    teacher: TeacherConfig
    segmentation: SegmentationConfig
    anchor_max_tokens: int
    stage2: Stage2Config
    mixed: MixedConfig
    rl: LasarRLConfig
    inference: InferenceConfig
    studies: LasarStudiesConfig

    def __post_init__(self):
        f = self.inference.force_n
        if f is not None and not 1 <= f <= self.n_max:
            raise ValueError(f"inference.force_n must be in 1..{self.n_max} (n_max), got {f}")
