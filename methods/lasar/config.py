"""LASAR's configuration schema (defaults and comments: methods/configs/lasar.yaml; paper
Table 7). Explicit CoT shares the teacher section."""
from dataclasses import dataclass
from typing import Annotated, Literal

from protocol.schema import NonNegFloat, PosFloat, PosInt, Prob, Range, out_of_range

from ..lm.config import GRPOConfig, SFTConfig

Alignment = Literal["kl", "cosine", "mse", "none"]


@dataclass(frozen=True)
class TeacherConfig:
    """Where the teacher CoTs come from (PROTOCOL 6; methods/lasar/teacher.py)."""
    kind: Literal["template", "import", "local", "auto"]
    import_path: str | None           # JSONL of {"user", "target", "cot"} (kind: import)
    local_model: str | None           # local instruct model folder or 'smollm2' (kind: local)
    local_batch: PosInt
    local_max_new_tokens: PosInt

    def resolved(self):
        """The teacher that runs: `auto` (the smol and paper profiles) is `local` when
        `local_model` names a model, else `template`; the others are themselves. The CoT
        artifact is keyed by the resolved teacher, so `auto` shares the CoTs of what it
        resolves to."""
        if self.kind != "auto":
            return self
        from dataclasses import replace
        return replace(self, kind="local" if self.local_model else "template")


@dataclass(frozen=True)
class SegmentationConfig:
    embedder: str                     # sentence-embedding model (paper: bge-small-en-v1.5)
    threshold: Annotated[float, Range(-1, 1)]   # boundary where neighbours' cosine < this
    batch_size: PosInt


@dataclass(frozen=True)
class Stage2Config(SFTConfig):
    """Latent loop + alignment + Policy Head CE (Section 2.3) on the SFT loop."""
    align: Alignment                  # Table 2's variants
    align_weight: NonNegFloat         # alpha_align
    policy_weight: NonNegFloat        # beta_policy
    detach_policy_input: bool         # false: L_policy also shapes h_0 (the paper's joint loss)


@dataclass(frozen=True)
class MixedConfig:
    """The single-stage route of Figure 3's race (methods/lasar/studies.py): from the backbone,
    Stage 1's examples and the CoT pool under Stage 2's joint objective, with the optimizer
    steps and examples Stage 1 and Stage 2 took together; one run per learning rate, each
    Stage 1's rate times a scale (the paper's Figure 3: 3e-4 and 5e-3)."""
    lr_scales: list[PosFloat]


@dataclass(frozen=True)
class LasarRLConfig(GRPOConfig):
    """Section 2.4: GRPO + terminal KL + REINFORCE."""
    terminal_kl: bool
    terminal_kl_weight: NonNegFloat   # gamma_KL
    reinforce: bool
    reinforce_coef: NonNegFloat       # gamma_RF
    step_penalty: NonNegFloat         # lambda
    entropy_coef: NonNegFloat         # eta (paper: not given)
    ema_decay: Prob                   # b_EMA <- decay * b_EMA + (1 - decay) * mean R_group


@dataclass(frozen=True)
class InferenceConfig:
    n_mode: Literal["argmax", "sample"]
    force_n: PosInt | None            # 1..n_max: Force-N (LasarConfig checks n_max)


@dataclass(frozen=True)
class LasarStudiesConfig:
    enabled: bool
    eval_users: PosInt | None         # fixed-seed subsample of test users; null = all
    alignments: list[Alignment]
    rl_ablation: bool
    force_n: list[int]                # each 1..n_max (LasarConfig checks)
    detached_stage2: bool             # also Stage 2 with h_0 detached from L_policy
    step_penalties: list[NonNegFloat]  # the lambda sweep (RL runs); [] = none
    mixed: bool


@dataclass(frozen=True)
class LasarConfig:
    eval_batch: PosInt
    n_max: PosInt                     # N_max, the Policy Head's output size
    policy_hidden: PosInt
    pool_examples: PosInt | None      # training examples given a teacher CoT; null = all
    teacher: TeacherConfig
    segmentation: SegmentationConfig
    anchor_max_tokens: PosInt
    stage2: Stage2Config
    mixed: MixedConfig
    rl: LasarRLConfig
    inference: InferenceConfig
    studies: LasarStudiesConfig

    def __post_init__(self):
        allowed = f"in [1, {self.n_max}] (1..n_max)"
        f = self.inference.force_n
        if f is not None and not 1 <= f <= self.n_max:
            raise out_of_range("inference.force_n", f, allowed)
        for i, f in enumerate(self.studies.force_n):
            if not 1 <= f <= self.n_max:
                raise out_of_range(f"studies.force_n[{i}]", f, allowed)
