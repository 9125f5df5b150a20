"""LASAR (paper Sections 2.2-2.4, Appendix E; PROTOCOL 6-7) on the generative core.

fit:   Stage 1 = MiniOneRec's SFT model (same artifact, trained once) -> latent tokens added ->
       teacher CoTs, segments and anchors for a pool of training examples -> Stage 2 (latent
       loop + alignment + Policy Head CE) -> RL (GRPO + terminal KL + REINFORCE).
rank:  the shared trie-constrained beam search, with the latent loop run through its prefix
       hook; N from the Policy Head (argmax, or sampled) or forced (Force-N); every test
       user's N is recorded.
Every ablation is a configuration of this class (methods/lasar/studies.py runs them).
"""
import copy
import json
import logging
import time

import numpy as np
import torch

from benchmark.beam import SidTrie, recommend
from benchmark.config import config_hash
from benchmark.errors import BenchmarkError

from .. import register
from ..lm.forward import collate
from ..lm.generative import GenerativeMethod
from ..lm.grpo import GRPOConfig
from ..lm.sft import SFTConfig, Trainer, write_done
from ..lm.tasks import build_tasks
from ..lm.tokenizer import sid_token_table
from .anchors import encode_segments, load_anchors, save_anchors
from .latent import START, LatentLM, add_latent_tokens
from .objective import LatentSFT, latent_task
from .segment import complexity_table, segment_cots
from .teacher import category_diversity, teacher_cots

log = logging.getLogger(__name__)


class Pool:
    """The training examples that carry a teacher CoT: Stage 2's data and RL's prompts."""

    def __init__(self, examples, task, info):
        self.examples, self.task, self.info = examples, task, info


@register("lasar")
class Lasar(GenerativeMethod):
    display_name = "LASAR"
    depends_on = ("minionerec",)
    cost = 25

    # --- Stage 1 ---------------------------------------------------------------------------
    def stage1(self, ctx):
        """MiniOneRec's SFT model, reused from its artifact (or trained there once). ->
        (base model with latent tokens added, tokenizer, codec, Stage-1 key, Stage-1 info)."""
        from ..minionerec import MiniOneRec
        s1 = MiniOneRec(ctx.config_of("minionerec"))
        model, tok, codec = s1.setup(ctx)
        model, info = s1.run_sft(ctx, model, tok, codec)
        add_latent_tokens(model, tok)
        self.stage1_method = s1
        return model, tok, codec, s1.sft_key(ctx), info

    def valid_subsample(self, ctx, k=None):
        return super().valid_subsample(ctx, k or self.config["stage2"]["valid_examples"])

    # --- pool: teacher CoT, segments, anchors ---------------------------------------------
    def pool_key(self, s1_key):
        c = self.config
        return config_hash({"stage1": s1_key, "pool": c["pool_examples"], "teacher": c["teacher"],
                            "segmentation": c["segmentation"], "n_max": c["n_max"],
                            "anchor_max_tokens": c["anchor_max_tokens"]})

    def prepare_pool(self, ctx, base, tok, codec, s1_key):
        c, train = self.config, ctx.split.train
        k = c["pool_examples"]
        idx = np.arange(len(train)) if not k or k >= len(train) else \
            np.sort(np.random.default_rng(ctx.seed + 1).choice(len(train), k, replace=False))
        examples = train.subset(idx)
        key = self.pool_key(s1_key)
        work = ctx.results_dir / "_work"
        apath, ipath = work / f"lasar-anchors-{key}.pt", work / f"lasar-segments-{key}.json"
        if apath.is_file() and ipath.is_file():
            anchors, info = load_anchors(apath), json.loads(ipath.read_text())
        else:
            t0 = time.perf_counter()
            cots = teacher_cots(ctx, examples, c["teacher"])
            t1 = time.perf_counter()
            seg = c["segmentation"]
            segments = segment_cots(cots, seg["embedder"], seg["threshold"], seg["batch_size"])
            t2 = time.perf_counter()
            anchors = encode_segments(base, tok, segments, ctx.device, c["anchor_max_tokens"],
                                      batch_size=64)
            t3 = time.perf_counter()
            counts = [len(s) for s in segments]
            div = [category_diversity(h, ctx.dataset.items) for h in examples.histories()]
            info = {"examples": len(examples), "segments_total": int(sum(counts)),
                    "mean_segments": float(np.mean(counts)),
                    "table8": complexity_table(counts, examples.lengths, div, c["n_max"]),
                    "raw_count_histogram": {int(v): int(n) for v, n in
                                            zip(*np.unique(counts, return_counts=True))},
                    "cot_example": cots[0], "segments_example": segments[0],
                    "seconds": {"teacher": round(t1 - t0, 1), "segmentation": round(t2 - t1, 1),
                                "anchors": round(t3 - t2, 1)}}
            work.mkdir(parents=True, exist_ok=True)
            save_anchors(anchors, apath)
            ipath.write_text(json.dumps(info, indent=1))
        start = tok.convert_tokens_to_ids(START)
        task = latent_task(codec, examples, start, anchors, c["n_max"])
        return Pool(examples, task, info)

    # --- Stage 2 (and the single-stage 'mixed' variant) -------------------------------------
    def new_latent(self, ctx, base, tok):
        torch.manual_seed(ctx.seed)                 # the Policy Head's init
        c = self.config
        return LatentLM(copy.deepcopy(base), tok, c["n_max"], c["policy_hidden"],
                        c["detach_policy_input"])

    def train_latent(self, ctx, base, tok, tasks, valid, s, key, name):
        """Shared SFT Trainer with LASAR's objective. -> (LatentLM with best weights, info)."""
        folder = ctx.results_dir / "_work" / f"lasar-{name}-{key}"
        latent = self.new_latent(ctx, base, tok)
        done = folder / "done.json"
        if done.is_file():
            log.info("lasar: %s model reused from %s", name, folder)
            latent.load_folder(folder / "best")
            return latent, json.loads(done.read_text())
        folder.mkdir(parents=True, exist_ok=True)
        cfg = SFTConfig(lr=s["lr"], epochs=s["epochs"], batch_size=s["batch_size"],
                        micro_batch=s["micro_batch"], patience=s["patience"],
                        eval_every=s["eval_every"], warmup_ratio=s["warmup_ratio"],
                        weight_decay=s["weight_decay"], max_grad_norm=s["max_grad_norm"],
                        mixed_precision=ctx.config["lm"]["mixed_precision"], seed=ctx.seed)
        objective = LatentSFT(latent, s["align"], s["align_weight"], s["policy_weight"])
        log.info("lasar: %s on %s (alignment %s)", name,
                 "+".join(f"{len(t)} {t.task}" for t in tasks), s["align"])
        t0 = time.perf_counter()
        trainer = Trainer(latent, tok, cfg, folder, ctx.device, objective=objective)
        info = trainer.fit(tasks, valid)
        info.update(seconds=round(time.perf_counter() - t0, 1), folder=str(folder))
        if trainer.acc.is_main_process:
            latent.load_folder(folder / "best")
            write_done(folder, info)
        return latent, info

    def stage2(self, ctx, base, tok, pool, valid, s1_key, **over):
        s = {**self.config["stage2"], **over}
        key = config_hash({"pool": self.pool_key(s1_key), "stage2": s,
                           "policy": [self.config["policy_hidden"],
                                      self.config["detach_policy_input"]]})
        latent, info = self.train_latent(ctx, base, tok, [pool.task], valid, s, key, "stage2")
        return latent, info, key

    def mixed(self, ctx, tok, codec, pool, valid, s1_key):
        """Single-stage variant (Figure 3): Stage 2's objective from the untrained backbone,
        with Stage 1's item tasks mixed in, so SID grounding and latent reasoning are learned
        together. Anchors are the Stage-1 model's (a random backbone has none worth having)."""
        s = {**self.config["stage2"], **self.config["mixed"]}
        s1cfg = self.stage1_method.config
        untrained, tok0, _ = self.stage1_method.setup(ctx)
        add_latent_tokens(untrained, tok0)
        if tok0.get_vocab() != tok.get_vocab():       # the pool was encoded with `tok`
            raise RuntimeError("lasar mixed: the rebuilt tokenizer differs from Stage 1's")
        items = [t for t in build_tasks(codec, ctx.split, s1cfg["tasks"], ctx.dataset.n_items,
                                        s1cfg["max_align_items"], ctx.seed)
                 if t.task != "seqrec"]
        key = config_hash({"pool": self.pool_key(s1_key), "mixed": s,
                           "items": [len(t) for t in items]})
        return self.train_latent(ctx, untrained, tok0, [pool.task] + items, valid, s, key,
                                 "mixed")

    # --- RL ----------------------------------------------------------------------------------
    def rl_phase(self, ctx, latent, tok, codec, pool, s2_key, **over):
        from .rl import LasarGRPO
        rl = {**self.config["rl"], **over}
        key = config_hash({"stage2": s2_key, "rl": rl})
        folder = ctx.results_dir / "_work" / f"lasar-rl-{key}"
        latent = copy.deepcopy(latent)
        if (folder / "done.json").is_file():
            latent.load_folder(folder / "best")
            return latent, {**json.loads((folder / "done.json").read_text()),
                            "folder": str(folder)}
        folder.mkdir(parents=True, exist_ok=True)
        cfg = GRPOConfig(lr=rl["lr"], epochs=rl["epochs"], group_size=rl["group_size"],
                         batch_size=rl["batch_size"], micro_batch=rl["micro_batch"],
                         beta=rl["beta"], clip=rl["clip"], warmup_ratio=rl["warmup_ratio"],
                         max_grad_norm=rl["max_grad_norm"])
        v = self.valid_subsample(ctx)
        if rl["valid_examples"] and rl["valid_examples"] < len(v):
            v = v.subset(np.arange(rl["valid_examples"]))
        valid = (latent_task(codec, v, tok.convert_tokens_to_ids(START), with_answers=False),
                 v.targets)
        latent, info = LasarGRPO(self, ctx, latent, tok, codec, cfg, rl, folder, pool, valid).run()
        return latent, {**info, "folder": str(folder)}

    # --- fit -----------------------------------------------------------------------------
    def fit(self, ctx):
        from benchmark.runner import is_main_process
        self.check_config()
        base, tok, codec, s1_key, s1_info = self.stage1(ctx)
        self.tok, self.topk = tok, ctx.topk
        self._decoder(ctx, ctx.device)
        pool = self.prepare_pool(ctx, base, tok, codec, s1_key)
        start = tok.convert_tokens_to_ids(START)
        valid = latent_task(codec, self.valid_subsample(ctx), start, n_max=self.config["n_max"])
        latent, s2_info, s2_key = self.stage2(ctx, base, tok, pool, valid, s1_key)
        info = {"parameters": sum(p.numel() for p in latent.parameters()),
                "stage1": s1_info, "pool": pool.info, "stage2": s2_info}
        self.sft_model = latent
        if self.config["rl"]["enabled"] and is_main_process():
            latent, info["rl"] = self.rl_phase(ctx, latent, tok, codec, pool, s2_key)
        self.fit_info = info
        self.model, self.tok, self.codec = latent.eval(), tok, codec
        self._state = dict(base=base, pool=pool, valid=valid, s1_key=s1_key, s2_key=s2_key)

    def check_config(self):
        c = self.config
        if c["inference"]["force_n"] is not None and not 1 <= c["inference"]["force_n"] <= c["n_max"]:
            raise BenchmarkError(f"lasar.inference.force_n must be in 1..{c['n_max']}")
        if c["stage2"]["align"] not in ("kl", "cosine", "mse", "none"):
            raise BenchmarkError("lasar.stage2.align must be kl, cosine, mse or none")

    # --- decoding --------------------------------------------------------------------------
    def _decoder(self, ctx, dev):
        if getattr(self, "_trie_dev", None) != dev:
            levels, n_codes = ctx.config["sids"]["levels"], ctx.config["sids"]["codes"]
            self.trie = SidTrie(ctx.sids().codes, n_codes).to(dev)
            self.sid_ids = sid_token_table(self.tok, levels, n_codes, dev)
            self.eval_gen = torch.Generator(device=dev).manual_seed(ctx.seed)
            self._trie_dev = dev

    def beam(self, latent, b, width, n=None, n_mode="argmax", force_n=None):
        """Beam search for one batch with the latent loop in the prefix hook. -> BeamResult
        with `.n` (B,) the latent steps used."""
        record = {}

        def hook(stepper, h0):
            steps = n if n is not None else latent.choose_n(latent.policy_logits(h0), n_mode,
                                                            force_n, self.eval_gen)
            latent.latent_loop(stepper, h0, steps)
            record["n"] = steps
            return latent.end_logp(stepper)

        res = recommend(latent.lm, b.ids, b.mask, self.trie, self.sid_ids, width=width, k=width,
                        prefix_hook=hook, head=b.head)
        res.n = record["n"]
        return res

    @torch.no_grad()
    def decode(self, latent, enc, dev, n_mode=None, force_n=None, progress=None):
        """Top-k items and N of every prompt of a LatentTask. -> ((n, k) items, (n,) N)."""
        inf = self.config["inference"]
        n_mode = n_mode or inf["n_mode"]
        force_n = force_n if force_n is not None else inf["force_n"]
        latent = latent.to(dev).eval()
        k = self.topk
        order = np.argsort([len(s) for s in enc.suffixes], kind="stable")
        items = np.empty((len(enc), k), dtype=np.int64)
        ns = np.empty(len(enc), dtype=np.int64)
        bs = self.config["eval_batch"]
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            b = collate(enc, idx, self.tok.pad_token_id, with_answers=False).to(dev)
            res = self.beam(latent, b, k, n_mode=n_mode, force_n=force_n)
            items[idx], ns[idx] = res.items.cpu().numpy(), res.n.cpu().numpy()
            if progress is not None:
                progress.update(len(idx))
        return items, ns

    def rank(self, ctx, examples, progress=None):
        self.topk = ctx.topk
        self._decoder(ctx, ctx.device)
        enc = latent_task(self.codec, examples, self.tok.convert_tokens_to_ids(START),
                          with_answers=False)
        items, self.rank_n = self.decode(self.model, enc, ctx.device, progress=progress)
        return items

    def prediction_fields(self):
        return {"latent_steps": np.asarray(self.rank_n)}

    def studies(self, ctx, topk, out_dir):
        from .studies import run_studies
        return run_studies(self, ctx, topk, out_dir)
