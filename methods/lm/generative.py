"""What every LLM-based generative recommender shares (PROTOCOL section 5): backbone,
tokenizer, SIDs, prompt, SFT, optional GRPO, and trie-constrained beam-search decoding.

A subclass names its SFT tasks (`config["tasks"]`) and may add RL (`config["rl"]["enabled"]`)
or a prefix hook for decoding (LASAR's latent loop). The SFT model is an artifact of its own,
`results/<dataset>/<profile>/_work/sft-<hash>/`, keyed by everything that produces it, so two
methods with the same SFT recipe (MiniOneRec and LASAR's Stage 1) train it once.
"""
import json
import logging
import time

import numpy as np
import torch

from benchmark.beam import SidTrie, recommend
from benchmark.config import config_hash
from benchmark.sids import item_text

from ..base import Method
from .backbone import backbone_id, build_backbone, check_device, n_parameters
from .forward import collate
from .sft import SFTConfig, Trainer, load_weights, write_done
from .tasks import Codec, build_tasks
from .tokenizer import sid_token_table

log = logging.getLogger(__name__)


class GenerativeMethod(Method):
    kind = "generative"
    extra_special = ()

    # --- set-up ------------------------------------------------------------------------
    def setup(self, ctx):
        """Backbone, tokenizer and codec, untrained. -> (model, tokenizer, codec)."""
        check_device(ctx.device)
        lm, sids = ctx.config["lm"], ctx.sids()
        texts = [item_text(r) for r in ctx.dataset.items]
        model, tok = build_backbone(lm, texts, ctx.cache_dir,
                                    levels=ctx.config["sids"]["levels"],
                                    n_codes=ctx.config["sids"]["codes"],
                                    extra_special=self.extra_special, seed=ctx.seed)
        return model, tok, Codec(tok, sids, texts, self.config["max_text_tokens"])

    def valid_subsample(self, ctx, k=None):
        """A fixed-seed subsample of k validation examples (default: sft.valid_examples)."""
        n, k = len(ctx.split.valid), k or self.config["sft"]["valid_examples"]
        if not k or k >= n:
            return ctx.split.valid
        idx = np.sort(np.random.default_rng(ctx.seed).choice(n, size=k, replace=False))
        return ctx.split.valid.subset(idx)

    def sft_key(self, ctx):
        return config_hash({"stage": "sft", "data": ctx.dataset.fingerprint,
                            "users": len(ctx.split.test), "sids": ctx.config["sids"],
                            "lm": {**ctx.config["lm"], "backbone": backbone_id(ctx.config["lm"])},
                            "tasks": list(self.config["tasks"]),
                            "max_text_tokens": self.config["max_text_tokens"],
                            "max_align_items": self.config["max_align_items"],
                            "extra_special": list(self.extra_special),
                            "sft": self.config["sft"], "seed": ctx.seed,
                            "history_len": ctx.config["history_len"]})

    # --- training ------------------------------------------------------------------------
    def run_sft(self, ctx, model, tok, codec):
        """Train (or resume, or reuse) the SFT model. -> (model with the best weights, info)."""
        folder = ctx.results_dir / "_work" / f"sft-{self.sft_key(ctx)}"
        done = folder / "done.json"
        if done.is_file():
            log.info("%s: SFT model reused from %s", self.name, folder)
            load_weights(model, folder / "best")
            return model, json.loads(done.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        s = self.config["sft"]
        cfg = SFTConfig(lr=s["lr"], epochs=s["epochs"], batch_size=s["batch_size"],
                        micro_batch=s["micro_batch"], patience=s["patience"],
                        eval_every=s["eval_every"], warmup_ratio=s["warmup_ratio"],
                        weight_decay=s["weight_decay"], max_grad_norm=s["max_grad_norm"],
                        mixed_precision=ctx.config["lm"]["mixed_precision"], seed=ctx.seed)
        tasks = build_tasks(codec, ctx.split, self.config["tasks"], ctx.dataset.n_items,
                            self.config["max_align_items"], ctx.seed)
        valid = codec.seqrec(self.valid_subsample(ctx))
        log.info("%s: SFT on %s (%s examples), %d validation examples, %s parameters", self.name,
                 ", ".join(e.task for e in tasks), "+".join(str(len(e)) for e in tasks),
                 len(valid), f"{n_parameters(model):,}")
        t0 = time.perf_counter()
        trainer = Trainer(model, tok, cfg, folder, ctx.device)
        info = trainer.fit(tasks, valid)
        info.update(seconds=round(time.perf_counter() - t0, 1), folder=str(folder),
                    examples={e.task: len(e) for e in tasks}, valid_examples=len(valid))
        if not trainer.acc.is_main_process:
            return model, info
        load_weights(model, folder / "best")
        write_done(folder, info)
        return model, info

    def fit(self, ctx):
        model, tok, codec = self.setup(ctx)
        n_params = n_parameters(model)
        model, sft_info = self.run_sft(ctx, model, tok, codec)
        self.fit_info = {"parameters": n_params, "sft": sft_info}
        model = self.after_sft(ctx, model, tok, codec)
        self.model, self.tok, self.codec = model.eval(), tok, codec

    def after_sft(self, ctx, model, tok, codec):
        """Hook for later stages (RL). Returns the model to decode with."""
        return model

    # --- decoding ------------------------------------------------------------------------
    def prefix_hook(self, ctx):
        """Extra positions before the first SID token (LASAR); None for plain decoding."""
        return None

    def rank(self, ctx, examples, progress=None):
        """Trie-constrained beam search, width = k = ctx.topk (PROTOCOL 4). Prompts are sorted
        by length so a batch carries little padding. -> (n, k) item indices."""
        dev, k = ctx.device, ctx.topk
        model = self.model.to(dev).eval()
        sids = ctx.sids()
        levels, n_codes = ctx.config["sids"]["levels"], ctx.config["sids"]["codes"]
        trie = SidTrie(sids.codes, n_codes).to(dev)
        sid_ids = sid_token_table(self.tok, levels, n_codes, dev)
        enc = self.codec.seqrec(examples, with_answers=False)
        order = np.argsort([len(s) for s in enc.suffixes], kind="stable")
        out = np.empty((len(examples), k), dtype=np.int64)
        bs, hook = self.config["eval_batch"], self.prefix_hook(ctx)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            b = collate(enc, idx, self.tok.pad_token_id, with_answers=False).to(dev)
            res = recommend(model, b.ids, b.mask, trie, sid_ids, width=k, k=k,
                            prefix_hook=hook, head=b.head)
            out[idx] = res.items.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
        return out

