"""Configuration schema of the generative core (defaults: methods/configs/<name>.yaml).

Each YAML section maps to one of these dataclasses (protocol/schema.py builds them),
so the keys and their defaults are written once, in the YAML.
"""
from dataclasses import dataclass
from typing import Annotated, Literal

from protocol.schema import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob, Range, require

Task = Literal["seqrec", "item2sid", "sid2item", "fusion"]


@dataclass(frozen=True)
class Batched:
    """What every training stage's batch obeys: a micro-batch is a part of the batch."""
    batch_size: PosInt              # effective (global) batch: examples or prompts per step
    micro_batch: PosInt             # examples or prompts per forward pass per process

    def __post_init__(self):
        require(self.micro_batch <= self.batch_size, "micro_batch", self.micro_batch,
                f"at most batch_size ({self.batch_size})")


@dataclass(frozen=True)
class SFTConfig(Batched):
    """Supervised fine-tuning (PROTOCOL 3, 5; paper Table 7)."""
    lr: PosFloat
    epochs: PosInt
    patience: PosInt                # evaluations without improvement before stopping
    eval_every: NonNegInt           # optimizer steps between evaluations; 0 = once per epoch
    warmup_ratio: Prob
    weight_decay: NonNegFloat
    max_grad_norm: PosFloat
    valid_examples: PosInt | None   # fixed-seed validation subsample for early stopping


@dataclass(frozen=True)
class RLConfig(Batched):
    """What the RL stages share (MiniOneRec's and LASAR's GRPO, LatentR3's RL): G rollouts per
    prompt, `batch_size` prompts per optimizer step, the best checkpoint by validation."""
    enabled: bool
    lr: PosFloat
    epochs: PosInt
    group_size: Annotated[int, Range(2)]  # G rollouts per prompt; at least 2: the advantage
                                    # is normalised within a group (or a batch)
    warmup_ratio: Prob
    max_grad_norm: PosFloat
    max_prompts: PosInt | None      # subsample of the prompts; null = all
    eval_every: NonNegInt           # optimizer steps between validation checks; 0 = per epoch
    valid_examples: PosInt | None   # validation users for choosing the best RL checkpoint


@dataclass(frozen=True)
class GRPOConfig(RLConfig):
    """GRPO over beam-search rollouts (paper Eq. 5, Appendix E.5): the G candidates of a prompt
    are a constrained beam of width G (at most the catalog: plan.py checks)."""
    beta: NonNegFloat               # KL penalty to the frozen reference (k3 estimator)
    clip: PosFloat


@dataclass(frozen=True)
class GenerativeConfig:
    """A method on the generative core: its SFT tasks and settings (LC-Rec)."""
    tasks: list[Task]
    max_text_tokens: PosInt         # item text cut to this many tokens in item-task answers
    max_align_items: PosInt | None  # item tasks on a fixed-seed subsample of items
    eval_batch: PosInt              # prompts per beam-search batch
    sft: SFTConfig


@dataclass(frozen=True)
class MiniOneRecConfig(GenerativeConfig):
    rl: GRPOConfig
