"""What every LLM-based generative recommender shares (PROTOCOL section 5): backbone,
tokenizer, SIDs, prompt, SFT, optional later stages (RL), and trie-constrained beam search.

A subclass names its SFT tasks (`config.tasks`) and may add a stage after SFT (`after_sft`:
MiniOneRec's GRPO). The SFT model is an artifact of its own (`_work/sft-<key>/`), keyed by
everything that produces it, so two methods with the same SFT recipe (MiniOneRec and LASAR's
Stage 1) train it once.
"""
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from protocol.schema import out_of_range, to_dict
from protocol.sids import item_text

from ..base import FitRecord, Method, Ranking
from .backbone import autocast, build_backbone, n_parameters, new_token_init
from .config import GenerativeConfig
from .decode import Catalog, beam_rank
from .sft import Trainer, load_best
from .tasks import Codec, build_tasks

log = logging.getLogger(__name__)


@dataclass
class GenerativeFit(FitRecord):
    """A trained generative recommender: the model to decode with, its tokenizer and codec."""
    model: object
    tok: object
    codec: object


def valid_subsample(ctx, k):
    """A fixed-seed subsample of k validation examples (all when k is null or too large)."""
    n = len(ctx.split.valid)
    if not k or k >= n:
        return ctx.split.valid
    idx = np.sort(np.random.default_rng(ctx.seed).choice(n, size=k, replace=False))
    return ctx.split.valid.subset(idx)


@dataclass
class SFTData:
    """What an SFT stage trains on: tasks (list of Encoded), the validation task, and facts
    about them for the stage's info (Explicit CoT: the CoTs' lengths)."""
    tasks: list
    valid: object
    info: dict = field(default_factory=dict)


def train_sft(ctx, art, model, tok, data, cfg, objective=None, what="SFT", max_steps=None):
    """Train `model` as the artifact `art` (resumable; reused once finished), for at most
    `max_steps` optimizer steps when given. `data()` -> SFTData, built only when training is
    needed. -> (model with the best weights, info; its `seconds` count preparing the data and
    training). `model` may be a wrapper with its own save_pretrained/load_folder (LASAR's
    LatentLM)."""
    def build(folder):
        t0 = time.perf_counter()
        d = data()
        log.info("%s on %s, %d validation examples, %s parameters", what,
                 " + ".join(f"{len(t)} {t.task}" for t in d.tasks), len(d.valid),
                 f"{n_parameters(model):,}")
        trainer = Trainer(model, tok, cfg, folder, ctx.device, seed=ctx.seed,
                          mixed_precision=ctx.config.lm.mixed_precision, objective=objective,
                          stage=art.kind, max_steps=max_steps)
        info = trainer.fit(d.tasks, d.valid)
        return {**info, "seconds": round(time.perf_counter() - t0, 1),
                "examples": {t.task: len(t) for t in d.tasks}, "valid_examples": len(d.valid),
                **d.info}
    return model, art.get(build, load_best(model))


class GenerativeMethod(Method):
    config_class = GenerativeConfig
    extra_special = ()

    def check(self, settings, processes, n_items):
        rl = getattr(self.config, "rl", None)           # MiniOneRec's and LASAR's GRPO
        if rl is not None and rl.enabled and rl.group_size > n_items:
            raise out_of_range(f"{self.name}.rl.group_size", rl.group_size,
                               f"at most the catalog ({n_items} items): a rollout is a beam "
                               "of G distinct items")

    # --- set-up ------------------------------------------------------------------------
    def setup(self, ctx):
        """Backbone, tokenizer and codec, untrained. -> (model, tokenizer, codec)."""
        sids = ctx.sids()
        texts = [item_text(r) for r in ctx.dataset.items]
        model, tok = build_backbone(ctx.config.lm, texts, ctx.cache_dir,
                                    levels=ctx.config.sids.levels, n_codes=ctx.config.sids.codes,
                                    extra_special=self.extra_special, seed=ctx.seed)
        return model, tok, Codec(tok, sids, texts, self.config.max_text_tokens)

    def sft_inputs(self):
        """The settings the SFT model is trained with (its artifact's configuration inputs)."""
        c = self.config
        return {"tasks": list(c.tasks), "max_text_tokens": c.max_text_tokens,
                "max_align_items": c.max_align_items, "extra_special": list(self.extra_special),
                "sft": to_dict(c.sft)}

    def sft_artifact(self, ctx):
        return ctx.artifact("sft", {**ctx.data_inputs(), **ctx.config.generative_inputs(),
                                    **self.sft_inputs()}, resumable=True, collective=True)

    # --- training ------------------------------------------------------------------------
    def run_sft(self, ctx, model, tok, codec):
        """Train (or resume, or reuse) the SFT model. -> (model with the best weights, info)."""
        c = self.config

        def data():
            return SFTData(build_tasks(codec, ctx.split, c.tasks, ctx.dataset.n_items,
                                       c.max_align_items, ctx.seed),
                           codec.seqrec(valid_subsample(ctx, c.sft.valid_examples)))
        return train_sft(ctx, self.sft_artifact(ctx), model, tok, data, c.sft,
                         what=f"{self.name}: SFT")

    def fit(self, ctx):
        model, tok, codec = self.setup(ctx)
        info = {"parameters": n_parameters(model),
                "new_token_init": new_token_init(ctx.config.lm)}
        model, info["sft"] = self.run_sft(ctx, model, tok, codec)
        model = self.after_sft(ctx, model, tok, codec, info)
        return GenerativeFit(model.eval(), tok, codec, info=info)

    def after_sft(self, ctx, model, tok, codec, info):
        """Hook for later stages (RL); adds their info to `info`. -> the model to decode with."""
        return model

    # --- decoding ------------------------------------------------------------------------
    def precision(self, ctx):
        return autocast(ctx.device, ctx.config.lm)

    def rank(self, ctx, fitted, examples, progress=None):
        """Trie-constrained beam search, width = k = ctx.topk (PROTOCOL 4), prompts sorted by
        length so a batch carries little padding. -> Ranking (n, k)."""
        enc = fitted.codec.seqrec(examples, with_answers=False)
        catalog = Catalog.build(ctx, fitted.tok, ctx.device)
        return Ranking(beam_rank(fitted.model, enc, fitted.tok.pad_token_id, catalog, ctx.topk,
                                 self.config.eval_batch, ctx.device, progress=progress))
