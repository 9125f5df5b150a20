"""LASAR (paper Sections 2.2-2.4, Appendix E; PROTOCOL 6-7) on the generative core.

fit:   Stage 1 = MiniOneRec's SFT model (same artifact, trained once) -> latent tokens added ->
       the CoT pool: teacher CoTs, segments, anchors (pool.py) -> Stage 2 (latent loop +
       alignment + Policy Head CE) -> RL (GRPO + terminal KL + REINFORCE). -> LasarFit.
rank:  the shared trie-constrained beam search, with the latent loop run through its prefix
       hook; N sampled from the Policy Head with the run's seed (Section 3.4's "adaptive
       sampling"; argmax on request) or forced (Force-N); every test user's N is recorded.
Every ablation is a configuration of this class, run on the fit record (studies.py).
"""
import copy
from dataclasses import dataclass

import numpy as np
import torch

from protocol.beam import BeamResult, recommend
from protocol import dist
from protocol.schema import replace, to_dict
from protocol.sids import embedder_path

from ..base import FitRecord, Ranking
from ..lm.backbone import new_token_init
from ..lm.decode import Catalog, beam_rank, sharded_decode
from ..lm.generative import GenerativeMethod, SFTData, train_sft, valid_subsample
from ..lm.grpo import rl_validation
from ..lm.sft import load_best
from ..minionerec import MiniOneRec
from ..lm.tasks import build_tasks
from .config import LasarConfig
from .latent import START, LatentLM, add_latent_tokens
from .objective import LatentSFT, latent_task
from .pool import build_pool
from . import segment
from .teacher import check_teacher, teacher_inputs
from .rl import LasarGRPO, rl_prompts


@dataclass
class LasarFit(FitRecord):
    """What LASAR's fit learned. model: the final LatentLM (after RL, or Stage 2 when RL is
    off); stage2: the LatentLM after Stage 2 (the RL ablation starts from it); base: the Stage-1
    model with the latent tokens (Pure SFT's decoder, the anchors' encoder); pool: the CoT pool;
    valid: Stage 2's validation prompts; catalog: the trie the beam search walks; generator:
    its seed seeds each decoding batch's sampled N at inference (n_mode: sample; Decoder)."""
    model: LatentLM
    stage2: LatentLM
    base: object
    tok: object
    codec: object
    pool: object
    valid: object
    stage2_key: str
    catalog: Catalog
    generator: torch.Generator


class Lasar(GenerativeMethod):
    config_class = LasarConfig

    def check(self, settings, processes, n_items):
        super().check(settings, processes, n_items)
        check_teacher(self.config.teacher, "lasar.teacher")
        embedder_path(self.config.segmentation.embedder, "lasar.segmentation.embedder")

    def code_versions(self):
        """The teacher's chains and their segmentation rule (PROTOCOL 6): a new template or
        rule makes LASAR's results stale, not only its pool artifacts."""
        return {"teacher": teacher_inputs(self.config.teacher),
                "segmentation": segment.SEGMENTATION_VERSION}

    # --- Stage 2 (and the single-stage 'mixed' variant) -------------------------------------
    def new_latent(self, ctx, base, tok, s):
        """A LatentLM on a copy of `base`; the Policy Head reads h_0 detached or not as the
        Stage2Config `s` says (default: not, the paper's joint loss of Section 2.3)."""
        torch.manual_seed(ctx.seed)                 # the Policy Head's init
        c = self.config
        return LatentLM(copy.deepcopy(base), tok, n_max=c.n_max, policy_hidden=c.policy_hidden,
                        detach_policy_input=s.detach_policy_input)

    def objective(self, latent, s):
        """Section 2.3's L_CE + alpha L_align + beta L_policy for the Stage2Config `s`."""
        return LatentSFT(latent, s.align, s.align_weight, s.policy_weight)

    def train_latent(self, ctx, art, base, tok, data, s, max_steps=None):
        """The shared SFT loop with LASAR's objective (a Stage2Config `s`), as the artifact
        `art`, for at most `max_steps` optimizer steps when given. -> (LatentLM with the best
        weights, info; its `aligned_share`: the share of the latent samples of all steps that
        got an alignment term, N <= their segment count, Appendix E.3; None with `align:
        none`; per step in TensorBoard, train_log.jsonl and the info's `train_curve`)."""
        latent = self.new_latent(ctx, base, tok, s)
        latent, info = train_sft(ctx, art, latent, tok, data, s,
                                 objective=self.objective(latent, s),
                                 what=f"lasar: {art.kind} (alignment {s.align})",
                                 max_steps=max_steps)
        return latent, {**info,
                        "aligned_share": info.get("train_means", {}).get("aligned_share")}

    def stage2_artifact(self, ctx, pool, s):
        c = self.config
        return ctx.artifact("lasar-stage2", {"pool": pool.key, "n_max": c.n_max,
                                             "stage2": to_dict(s),
                                             "policy": [c.policy_hidden]},
                            resumable=True, collective=True)

    def stage2(self, ctx, base, tok, pool, valid, s=None):
        """Stage 2 with settings `s` (default: the configured ones; a study's variant of
        `align`), trained by every process of a distributed run together (DDP).
        -> (LatentLM, info, artifact key)."""
        s = s or self.config.stage2
        art = self.stage2_artifact(ctx, pool, s)
        latent, info = self.train_latent(ctx, art, base, tok,
                                         lambda: SFTData([pool.task], valid), s)
        return latent, info, art.key

    def race_budget(self, fitted):
        """What the two-stage route used (Figure 3's equal budget): Stage 1's and Stage 2's
        optimizer steps and training examples, each and together."""
        part = {}
        for name in ("stage1", "stage2"):
            i = fitted.info[name]
            steps = int(i["steps_run"])
            part[name] = {"steps": steps,
                          "examples": int(i.get("examples_run") or steps * i["effective_batch"])}
        return {"steps": sum(p["steps"] for p in part.values()),
                "examples": sum(p["examples"] for p in part.values()), **part}

    def mixed(self, ctx, fitted, scale):
        """Figure 3's single-stage route at Stage 1's learning rate times `scale`: from the
        untrained backbone (where Stage 1 starts), Stage 1's examples (its SFT tasks, plain
        answer CE) and the CoT pool (the latent loop, alignment and Policy Head terms: Stage
        2's joint objective) mixed in one stage, for exactly the optimizer steps Stage 1 and
        Stage 2 took together, at the batch size that gives their examples too. Validated on
        Stage 2's validation examples with Stage 2's loss. The pool's anchors are the Stage-1
        model's (the mixed route has no other: a departure in its favour). -> (LatentLM, info)."""
        c = self.config
        s1 = MiniOneRec.of(ctx)
        budget = self.race_budget(fitted)
        batch = max(1, round(budget["examples"] / budget["steps"]))
        untrained, tok0, _ = s1.setup(ctx)
        add_latent_tokens(untrained, tok0)
        if tok0.get_vocab() != fitted.tok.get_vocab():     # the pool was encoded with `tok`
            raise RuntimeError("lasar mixed: the rebuilt tokenizer differs from Stage 1's")
        tasks = build_tasks(fitted.codec, ctx.split, s1.config.tasks, ctx.dataset.n_items,
                            s1.config.max_align_items, ctx.seed) + [fitted.pool.task]
        per_epoch = sum(-(-len(t) // batch) for t in tasks)
        s = replace(c.stage2, lr=s1.config.sft.lr * scale, batch_size=batch,
                    micro_batch=min(c.stage2.micro_batch, batch),
                    epochs=-(-budget["steps"] // per_epoch) + 1,
                    eval_every=s1.config.sft.eval_every, warmup_ratio=s1.config.sft.warmup_ratio)
        art = ctx.artifact("lasar-mixed", {
            "pool": fitted.pool.key, "n_max": c.n_max, "mixed": to_dict(s), "policy": [c.policy_hidden],
            "tasks": [len(t) for t in tasks], "budget": budget},
            resumable=True, collective=True)           # every process of a run trains it (DDP)
        latent, info = self.train_latent(ctx, art, untrained, tok0,
                                         lambda: SFTData(tasks, fitted.valid), s,
                                         max_steps=budget["steps"])
        return latent, {**info, "lr": s.lr, "scale": scale, "budget": budget}

    # --- RL ----------------------------------------------------------------------------------
    def rl_phase(self, ctx, fitted, rl=None):
        """RL (a LasarRLConfig `rl`; default the configured one) from the record's Stage-2
        model, built by every process of a distributed run together (a study's variant too).
        -> (LatentLM with the best RL weights, info)."""
        rl = rl or self.config.rl
        dist.init(ctx.device)    # the process group, also when Stage 2 was reused from the cache
        art = ctx.artifact("lasar-rl", {
            "stage2": fitted.stage2_key, "rl": to_dict(rl),
            "validation": {"topk": ctx.topk, "eval_batch": self.config.eval_batch,
                           "inference": to_dict(self.config.inference)}},
            resumable=True, collective=True)
        latent = copy.deepcopy(fitted.stage2)

        def build(folder):
            v = rl_validation(ctx, self.config.stage2.valid_examples, rl)
            loop = LasarGRPO(ctx, latent, fitted.tok, rl, folder, self.config.eval_batch,
                             self.decoder(ctx, fitted), art.kind)
            loop.setup_prompts(*rl_prompts(fitted.pool, rl, ctx.seed), self.prompts(fitted, v),
                               v.targets)
            return loop.run()
        return latent, art.get(build, load_best(latent))

    # --- fit -----------------------------------------------------------------------------
    def fit(self, ctx):
        c = self.config
        base, tok, codec, s1_key, s1_info = MiniOneRec.of(ctx).stage1(ctx, add_latent_tokens)
        catalog = Catalog.build(ctx, tok, ctx.device)
        generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        pool = build_pool(ctx, c, base, tok, codec, s1_key)
        start = tok.convert_tokens_to_ids(START)
        valid = latent_task(codec, valid_subsample(ctx, c.stage2.valid_examples), start,
                            n_max=c.n_max)
        stage2, s2_info, s2_key = self.stage2(ctx, base, tok, pool, valid)
        fitted = LasarFit(stage2, stage2, base, tok, codec, pool, valid, s2_key, catalog,
                          generator, info={
                              "parameters": sum(p.numel() for p in stage2.parameters()),
                              "new_token_init": new_token_init(ctx.config.lm),
                              "stage1": s1_info, "pool": pool.info, "stage2": s2_info})
        if c.rl.enabled:                           # in every process of a distributed run
            fitted.model, fitted.info["rl"] = self.rl_phase(ctx, fitted)
        fitted.model.eval()
        return fitted

    # --- decoding --------------------------------------------------------------------------
    def decoder(self, ctx, fitted):
        """Decoding with the fit record's tokenizer, catalog and generator (RL's validation,
        rank, studies, benchmarks)."""
        return Decoder(fitted.tok, fitted.catalog, fitted.generator, ctx.device, ctx.topk,
                       self.config.inference, self.config.eval_batch)

    def prompts(self, fitted, examples):
        """LASAR's prompts (the shared prompt, then <s>) of `examples`, without answers."""
        return latent_task(fitted.codec, examples, fitted.tok.convert_tokens_to_ids(START),
                           with_answers=False)

    def rank(self, ctx, fitted, examples, progress=None):
        items, ns = self.decoder(ctx, fitted).decode(fitted.model, self.prompts(fitted, examples),
                                                     progress=progress)
        return Ranking(items, {"latent_steps": ns})

    def plain_decode(self, ctx, fitted, examples, progress=None):
        """The Stage-1 model (MiniOneRec's SFT) with plain beam search and no latent loop:
        'Pure SFT', and the time baseline of Table 4. -> (n, k) items."""
        enc = fitted.codec.seqrec(examples, with_answers=False)
        return beam_rank(fitted.base, enc, fitted.tok.pad_token_id, fitted.catalog, ctx.topk,
                         self.config.eval_batch, ctx.device, progress=progress)

    def studies(self, ctx, fitted, ranking, out_dir):
        from .studies import run_studies
        return run_studies(self, ctx, fitted, ranking, out_dir)


@dataclass
class LatentBeam(BeamResult):
    """The beam search's result for a batch, and the latent steps each prompt took (B,)."""
    n: torch.Tensor


class Decoder:
    """LASAR's decoding: the beam search (width k) with the latent loop in its prefix hook,
    for one batch (`beam`) or for every prompt of a LatentTask (`decode`, its batches shared
    out among the processes of a distributed run). `inference`: the InferenceConfig (N from
    the head's argmax, sampled, or forced). A sampled N is drawn, batch by batch, from a
    generator seeded with (`generator`'s seed, the batch's number), so it does not depend on
    how the batches are shared out, nor on what was decoded before."""

    def __init__(self, tok, catalog, generator, device, k, inference, eval_batch):
        self.tok, self.catalog, self.generator = tok, catalog, generator
        self.dev, self.k, self.inference, self.eval_batch = device, k, inference, eval_batch

    def beam(self, latent, b, width, n=None, n_mode="argmax", force_n=None, generator=None):
        """Beam search for one batch with the latent loop in the prefix hook; N given (`n`),
        else chosen by the head (a sample draws on `generator`, default the Decoder's).
        -> LatentBeam."""
        record = {}

        gen = generator if generator is not None else self.generator

        def hook(stepper, h0):
            steps = n if n is not None else latent.choose_n(latent.policy_logits(h0), n_mode,
                                                            force_n, gen)
            latent.latent_loop(stepper, h0, steps)
            record["n"] = steps
            return latent.end_logp(stepper)

        res = recommend(latent.lm, b.ids, b.mask, self.catalog.trie, self.catalog.sid_ids,
                        width=width, k=width, prefix_hook=hook, head=b.head)
        return LatentBeam(res.items, res.scores, record["n"])

    def batch_generator(self, number):
        """The generator of batch `number`'s sampled N: seeded with (the Decoder's generator's
        seed, number)."""
        seed = np.random.SeedSequence([self.generator.initial_seed(), number])
        return torch.Generator(device=self.generator.device).manual_seed(
            int(seed.generate_state(1, np.uint64)[0] >> np.uint64(1)))

    @torch.no_grad()
    def decode(self, latent, enc, n_mode=None, force_n=None, progress=None):
        """Top-k items and N of every prompt of a LatentTask (sharded_decode: every process of
        a distributed run decodes its batches and gets all rows). -> ((n, k) items, (n,) N)."""
        n_mode = n_mode or self.inference.n_mode
        force_n = force_n if force_n is not None else self.inference.force_n
        latent = latent.to(self.dev).eval()

        def step(number, b):
            g = self.batch_generator(number) if n_mode == "sample" else None
            res = self.beam(latent, b, self.k, n_mode=n_mode, force_n=force_n, generator=g)
            return {"items": res.items, "n": res.n}
        out = sharded_decode(latent, enc, self.tok.pad_token_id, self.eval_batch, self.dev, step,
                             progress)
        return out["items"], out["n"]
