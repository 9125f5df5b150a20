"""Configuration schema of the generative core (defaults: methods/configs/<name>.yaml).

Each YAML section maps to one of these dataclasses (benchmark/protocol/schema.py builds them),
so the keys and their defaults are written once, in the YAML.
"""
from dataclasses import dataclass
from typing import Literal

Task = Literal["seqrec", "item2sid", "sid2item", "fusion"]


@dataclass(frozen=True)
class SFTConfig:
    """Supervised fine-tuning (PROTOCOL 3, 5; paper Table 7)."""
    lr: float
    epochs: int
    batch_size: int                 # effective (global) batch, in examples
    micro_batch: int                # examples per forward pass per process
    patience: int                   # evaluations without improvement before stopping
    eval_every: int                 # optimizer steps between evaluations; 0 = once per epoch
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    valid_examples: int | None      # fixed-seed validation subsample for early stopping

    def __post_init__(self):
        if self.micro_batch > self.batch_size:
            raise ValueError(f"micro_batch ({self.micro_batch}) must not exceed batch_size "
                             f"({self.batch_size}); lower micro_batch")


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO over beam-search rollouts (paper Eq. 5, Appendix E.5)."""
    enabled: bool
    lr: float
    epochs: int
    group_size: int                 # G candidates per prompt from the constrained beam search
    batch_size: int                 # prompts per optimizer step
    micro_batch: int                # prompts per forward pass
    beta: float                     # KL penalty to the frozen reference (k3 estimator)
    clip: float
    warmup_ratio: float
    max_grad_norm: float
    max_prompts: int | None         # subsample of the prompts; null = all
    eval_every: int                 # optimizer steps between validation checks; 0 = per epoch
    valid_examples: int | None      # validation users for choosing the best RL checkpoint

    def __post_init__(self):
        if self.group_size < 2:
            raise ValueError("group_size must be at least 2: GRPO normalises within a group")
        if self.micro_batch > self.batch_size:
            raise ValueError("micro_batch must not exceed batch_size")


@dataclass(frozen=True)
class GenerativeConfig:
    """A method on the generative core: its SFT tasks and settings (LC-Rec)."""
    tasks: list[Task]
    max_text_tokens: int            # item text cut to this many tokens in item-task answers
    max_align_items: int | None     # item tasks on a fixed-seed subsample of items
    eval_batch: int                 # prompts per beam-search batch
    sft: SFTConfig


@dataclass(frozen=True)
class MiniOneRecConfig(GenerativeConfig):
    rl: GRPOConfig
