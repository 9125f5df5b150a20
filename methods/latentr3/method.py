"""LatentR3 (Zhang et al., 2025, "Reinforced Latent Reasoning for LLM-based Recommendation";
../shared/REFERENCES.md "LatentR3") on the shared protocol: latent reasoning learned without any
CoT data.

fit:   Stage 1 = MiniOneRec's SFT model (`init: stage1`, the same artifact LASAR and Explicit
       CoT start from) or the untrained backbone (`init: backbone`, the reference's choice) ->
       the thought token added -> SFT with the thought (CE on the answer; the whole LM and the
       thought attention train; thought.py) -> RL on the thought (LM frozen; rl.py).
rank:  the shared trie-constrained beam search with the deterministic thought in its prefix
       hook (decoding cost comparable with LASAR's latent loop).
studies: RL on or off, and 1 vs 2 thought tokens, on the studies' fixed test users.
"""
import copy
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from protocol import dist
from protocol.beam import recommend
from protocol.schema import NonNegInt, PosFloat, PosInt, to_dict

from ..base import FitRecord, Ranking
from ..lm.backbone import new_token_init
from ..lm.config import RLConfig, SFTConfig
from ..lm.decode import Catalog, sharded_decode
from ..lm.forward import Batch, collate
from ..lm.generative import GenerativeMethod, SFTData, train_sft, valid_subsample
from ..lm.grpo import rl_validation
from ..lm.sft import load_best
from ..lm.tasks import Encoded
from ..minionerec import MiniOneRec
from .rl import LatentR3RL
from .thought import ThoughtLM, ThoughtSFT, add_thought_token, thought_hook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentR3RLConfig(RLConfig):
    """Stage 2: RL on the thought attention (../shared/REFERENCES.md): G latents per prompt, one
    noise-free and G-1 noisy; micro_batch prompts per forward pass (x G rows)."""
    noise_std: PosFloat               # std of the Gaussian noise on the noisy thoughts


@dataclass(frozen=True)
class LatentR3StudiesConfig:
    enabled: bool
    eval_users: PosInt | None         # the studies' fixed-seed test users (LASAR's rule)
    rl_ablation: bool                 # the model before RL on the same users
    thoughts: list[NonNegInt]         # thought counts compared (each trained SFT + RL; 0: the
                                      # same SFT with no thought, no RL: the budget's control)


@dataclass(frozen=True)
class LatentR3Config:
    """methods/configs/latentr3.yaml."""
    eval_batch: PosInt
    init: Literal["stage1", "backbone"]
    n_thoughts: PosInt
    sft: SFTConfig
    rl: LatentR3RLConfig
    studies: LatentR3StudiesConfig


@dataclass
class ThoughtTask(Encoded):
    """Sequential-recommendation prompts with the answers kept apart (the thought goes
    between)."""

    def collate(self, idx, pad_id):
        b = collate(self, idx, pad_id, with_answers=False)
        labels = torch.tensor([self.answers[i] for i in idx], dtype=torch.long)   # (B, A)
        return Batch(b.head, b.ids, b.mask, labels, None, answers_apart=True)


def thought_task(codec, examples):
    enc = codec.seqrec(examples)
    return ThoughtTask("thought_seqrec", enc.head, enc.suffixes, enc.answers)


@dataclass
class LatentR3Fit(FitRecord):
    """model: the final ThoughtLM (after RL, or SFT when RL is off); sft: the ThoughtLM after
    SFT; base: the starting model with the thought token (a study's variant starts from it);
    start: the inputs naming it; sft_key: the SFT artifact's key; catalog: the beam search's
    trie."""
    model: ThoughtLM
    sft: ThoughtLM
    base: object
    tok: object
    codec: object
    start: dict
    sft_key: str
    catalog: Catalog


class LatentR3(GenerativeMethod):
    config_class = LatentR3Config

    def check(self, settings, processes, n_items):
        """Nothing beyond the schema: RL's group is G latents, not G catalog items."""

    # --- training --------------------------------------------------------------------------
    def start_model(self, ctx):
        """The model SFT starts from, with the thought token. -> (model, tok, codec, inputs
        naming it, Stage-1 info or None)."""
        s1 = MiniOneRec.of(ctx)
        if self.config.init == "stage1":
            model, tok, codec, key, info = s1.stage1(ctx, add_thought_token)
            return model, tok, codec, {"stage1": key}, info
        model, tok, codec = s1.setup(ctx)
        add_thought_token(model, tok)
        return model, tok, codec, {"init": "backbone", **ctx.data_inputs(),
                                   **ctx.config.generative_inputs(),
                                   "max_text_tokens": s1.config.max_text_tokens}, None

    def train_thought(self, ctx, base, tok, codec, start, n_thoughts):
        """SFT with `n_thoughts` thoughts from `base`, as an artifact. -> (ThoughtLM, info,
        key)."""
        c = self.config
        art = ctx.artifact("latentr3-sft", {**start, "n_thoughts": n_thoughts,
                                            "sft": to_dict(c.sft), "seed": ctx.seed},
                           resumable=True, collective=True)
        torch.manual_seed(ctx.seed)                     # the thought attention's init
        model = ThoughtLM(copy.deepcopy(base), n_thoughts)

        def data():
            return SFTData([thought_task(codec, ctx.split.train)],
                           thought_task(codec, valid_subsample(ctx, c.sft.valid_examples)))
        model, info = train_sft(ctx, art, model, tok, data, c.sft, objective=ThoughtSFT(model),
                                what=f"latentr3: SFT with {n_thoughts} thought(s)")
        return model, info, art.key

    def rl_phase(self, ctx, fitted, sft_model, sft_key):
        """RL on the thought attention from `sft_model` (LM frozen), an artifact built by every
        process of a distributed run together. -> (ThoughtLM with the best RL weights, info)."""
        c, rl = self.config, self.config.rl
        dist.init(ctx.device)
        art = ctx.artifact("latentr3-rl", {"sft": sft_key, "rl": to_dict(rl), "validation": {
            "topk": ctx.topk, "eval_batch": c.eval_batch}}, resumable=True, collective=True)
        model = copy.deepcopy(sft_model)
        model.lm.requires_grad_(False)

        def build(folder):
            train = ctx.split.train
            if rl.max_prompts and rl.max_prompts < len(train):
                rng = np.random.default_rng(ctx.seed)
                train = train.subset(np.sort(rng.choice(len(train), rl.max_prompts,
                                                        replace=False)))
            v = rl_validation(ctx, c.sft.valid_examples, rl)
            loop = LatentR3RL(ctx, model, fitted.tok, rl, folder, c.eval_batch,
                              lambda m, enc: self.decode(ctx, fitted, m, enc), art.kind)
            loop.setup_prompts(fitted.codec.seqrec(train, with_answers=False), train.targets,
                               fitted.codec.seqrec(v, with_answers=False), v.targets)
            return loop.run()
        return model.eval(), art.get(build, load_best(model))

    def variant(self, ctx, fitted, n_thoughts):
        """SFT (and RL when enabled) with `n_thoughts` thoughts from the record's start model.
        -> (final ThoughtLM, SFT ThoughtLM, info)."""
        sft, sft_info, key = self.train_thought(ctx, fitted.base, fitted.tok, fitted.codec,
                                                fitted.start, n_thoughts)
        info = {"sft": sft_info}
        model = sft
        if self.config.rl.enabled and n_thoughts > 0:       # no thought: nothing for RL
            model, info["rl"] = self.rl_phase(ctx, fitted, sft, key)
        return model.eval(), sft.eval(), info

    def fit(self, ctx):
        c = self.config
        base, tok, codec, start, s1_info = self.start_model(ctx)
        catalog = Catalog.build(ctx, tok, ctx.device)
        fitted = LatentR3Fit(None, None, base, tok, codec, start, None, catalog, info={
            "init": c.init, "n_thoughts": c.n_thoughts, "stage1": s1_info,
            "new_token_init": new_token_init(ctx.config.lm),
            "cot_data": False})
        sft, sft_info, fitted.sft_key = self.train_thought(ctx, base, tok, codec, start,
                                                           c.n_thoughts)
        fitted.model = fitted.sft = sft.eval()
        fitted.info.update(parameters=sum(p.numel() for p in sft.parameters()),
                           attention_parameters=sum(p.numel()
                                                    for p in sft.attention.parameters()),
                           sft=sft_info)
        if c.rl.enabled:
            fitted.model, fitted.info["rl"] = self.rl_phase(ctx, fitted, sft, fitted.sft_key)
        fitted.model.eval()
        return fitted

    # --- decoding ----------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, ctx, fitted, model, enc, progress=None):
        """Top-k items of every prompt of `enc` (seqrec prompts without answers) by the beam
        search with `model`'s deterministic thought in the prefix hook, the batches shared out
        among the processes of a distributed run. -> (n, k) items."""
        model = model.to(ctx.device).eval()
        k, cat = ctx.topk, fitted.catalog

        hook = thought_hook(model) if model.n_thoughts else None   # 0: the studies' control

        def step(number, b):
            return {"items": recommend(model.lm, b.ids, b.mask, cat.trie, cat.sid_ids, width=k,
                                       k=k, prefix_hook=hook, head=b.head,
                                       prefix_states="all").items}
        return sharded_decode(model, enc, fitted.tok.pad_token_id, self.config.eval_batch,
                              ctx.device, step, progress)["items"]

    def rank(self, ctx, fitted, examples, progress=None):
        enc = fitted.codec.seqrec(examples, with_answers=False)
        return Ranking(self.decode(ctx, fitted, fitted.model, enc, progress))

    def studies(self, ctx, fitted, ranking, out_dir):
        from .studies import run_studies
        return run_studies(self, ctx, fitted, ranking, out_dir)
