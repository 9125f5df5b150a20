"""Explicit CoT (GREAM; Hong et al., 2025), stripped to its CoT reasoning chain on the shared
prompt (paper Section 3.1 "Baselines", Appendix D; PROTOCOL 5; ../shared/REFERENCES.md).

fit:   Stage 1 = MiniOneRec's SFT model (the same artifact LASAR's Stage 2 starts from), then
       one SFT on the teacher-CoT pool with two tasks per example:
         CoT mode     prompt -> <think> teacher CoT </think> SID answer
         direct mode  prompt -> SID answer
       (the teacher, its cache and the pool are LASAR's: PROTOCOL 6), early stopping on the
       direct-mode validation loss.
rank:  direct answer with the shared trie-constrained beam search (GREAM's own strongest
       setting; Table 1).
CoT generation (Table 4): after the prompt, `<think>` and greedy reasoning text, batched on
       the KV cache, until `</think>`, EOS, a SID token, or the length cap (then `</think>` is
       forced), followed by the constrained beam search for the answer on the same cache.
       `studies` measures its accuracy and time per user against direct mode on the same test
       users; `python -m benchmark bench cot` adds LASAR and plain decoding in one process.
       Under `accelerate launch` both modes share their batches out among the processes
       (methods/lm/decode.py), times are the group's wall time and the main process writes.
"""
import logging
from dataclasses import dataclass

import numpy as np
import torch

from protocol.beam import recommend
from protocol.dist import clock, is_main_process
from protocol.io import atomic_write_json
from protocol.metrics import summarize, target_ranks
from protocol.progress import progress as progress_bar
from protocol.schema import PosInt, to_dict

from .lasar.config import TeacherConfig
from .lasar.pool import pool_examples
from .lasar.item_text import item_text_share
from .lasar.teacher import (check_teacher, cot_artifact, teacher_cots, teacher_inputs,
                             warn_without_item_text)
from .lm.backbone import new_token_init
from .lm.config import SFTConfig
from .lm.decode import Catalog, sharded_decode
from .lm.generative import (GenerativeFit, GenerativeMethod, SFTData, train_sft,
                            valid_subsample)
from .lm.tasks import Encoded

log = logging.getLogger(__name__)
THINK, END_THINK = "<think>", "</think>"


@dataclass(frozen=True)
class CotGenerationConfig:
    max_new_tokens: PosInt       # reasoning-length cap; </think> is forced there
    batch: PosInt


@dataclass(frozen=True)
class CotStudiesConfig:
    enabled: bool
    eval_users: PosInt | None    # test users for direct vs CoT generation


@dataclass(frozen=True)
class CotGreamConfig:
    """methods/configs/cot_gream.yaml."""
    eval_batch: PosInt
    pool_examples: PosInt | None  # LASAR's pool rule, so the two share the teacher's CoTs
    teacher: TeacherConfig
    max_cot_tokens: PosInt       # teacher CoT tokens kept per training example
    direct_task: bool            # also train prompt -> answer (GREAM's direct mode)
    sft: SFTConfig
    cot_generation: CotGenerationConfig
    studies: CotStudiesConfig


def add_think_tokens(model, tok):
    """<think> and </think> as single tokens (after Stage 1); new rows at the mean embedding."""
    missing = [t for t in (THINK, END_THINK) if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
        from .lm.backbone import resize_vocab
        resize_vocab(model, len(tok))
    return model


def cot_tasks(codec, examples, cots, think, end_think, max_cot_tokens, direct=True):
    """CoT-mode (and direct-mode) SFT examples of the pool. -> (list of Encoded, (n,) token
    count of each CoT before the cap)."""
    base = codec.seqrec(examples)
    cot_ids = [codec.enc(c) for c in cots]
    cot = Encoded("cot", base.head, base.suffixes,
                  [[think] + c[:max_cot_tokens] + [end_think] + a
                   for c, a in zip(cot_ids, base.answers)])
    return ([cot, base] if direct else [cot]), np.array([len(c) for c in cot_ids])


class CotGenerator:
    """The prefix hook of CoT-generation mode: <think>, greedy reasoning tokens on the stepper's
    cache (finished rows are masked out and stop advancing), </think>; returns the
    log-probabilities at the first SID position. Records each row's reasoning length."""

    def __init__(self, tok, vocab_size, sid_ids, max_new_tokens, device):
        self.think = tok.convert_tokens_to_ids(THINK)
        self.end = tok.convert_tokens_to_ids(END_THINK)
        self.pad = tok.pad_token_id
        stop = torch.zeros(vocab_size, dtype=torch.bool)
        stop[[self.end, tok.eos_token_id]] = True
        stop[torch.as_tensor(sid_ids).reshape(-1).cpu()] = True
        self.stop = stop.to(device)
        self.cap = int(max_new_tokens)
        self.lengths, self.tokens = None, None

    def __call__(self, stepper, hidden):
        B = stepper.mask.shape[0]
        dev = stepper.mask.device
        logits = stepper.forward(input_ids=torch.full((B,), self.think, device=dev)).logits[:, -1]
        alive = torch.ones(B, dtype=torch.bool, device=dev)
        n = torch.zeros(B, dtype=torch.long, device=dev)
        tokens = torch.full((B, self.cap), self.pad, dtype=torch.long, device=dev)
        first = torch.empty((B, logits.shape[-1]), device=dev)
        while alive.any():
            nxt = logits.argmax(-1)
            stop = alive & (self.stop[nxt] | (n >= self.cap))
            nxt = torch.where(stop, torch.full_like(nxt, self.end), nxt)
            going = alive & ~stop
            rows = going.nonzero()[:, 0]
            tokens[rows, n[rows]] = nxt[rows]
            feed = torch.where(alive, nxt, torch.full_like(nxt, self.pad))
            logits = stepper.forward(input_ids=feed, attend=alive).logits[:, -1]
            if stop.any():
                first[stop] = torch.log_softmax(logits[stop].float(), -1)
            n += going.long()
            alive = going
        self.lengths, self.tokens = n, tokens
        return first


class ExplicitCoT(GenerativeMethod):
    config_class = CotGreamConfig

    def check(self, settings, processes, n_items):
        super().check(settings, processes, n_items)
        check_teacher(self.config.teacher, "cot_gream.teacher")

    def code_versions(self):
        """The teacher's chains: a new template makes the results stale (LASAR's do too)."""
        return {"teacher": teacher_inputs(self.config.teacher)}

    def fit(self, ctx):
        from .minionerec import MiniOneRec
        model, tok, codec, s1_key, s1_info = MiniOneRec.of(ctx).stage1(ctx, add_think_tokens)
        c = self.config
        examples = pool_examples(ctx.split.train, c.pool_examples, ctx.seed)
        text_share = item_text_share(examples.histories(), ctx.dataset.items)
        warn_without_item_text(text_share, c.teacher)
        cot_art = cot_artifact(ctx, examples, c.teacher)
        art = ctx.artifact("cot-gream", {
            "stage1": s1_key, "cots": cot_art.key,
            "max_cot_tokens": c.max_cot_tokens, "direct": c.direct_task, "sft": to_dict(c.sft),
            "seed": ctx.seed}, resumable=True, collective=True)

        def data():
            cots = teacher_cots(ctx, cot_art, examples, c.teacher)
            tasks, n_tokens = cot_tasks(codec, examples, cots, tok.convert_tokens_to_ids(THINK),
                                        tok.convert_tokens_to_ids(END_THINK), c.max_cot_tokens,
                                        c.direct_task)
            log.info("cot_gream: teacher CoTs %.0f tokens on average (cap %d)",
                     np.mean(n_tokens), c.max_cot_tokens)
            return SFTData(tasks, codec.seqrec(valid_subsample(ctx, c.sft.valid_examples)),
                           {"mean_cot_tokens": float(np.mean(n_tokens)),
                            "cot_truncated_share": float(np.mean(n_tokens > c.max_cot_tokens))})

        model, info = train_sft(ctx, art, model, tok, data, c.sft, what="cot_gream: CoT SFT")
        return GenerativeFit(model.eval(), tok, codec,
                             info={"stage1": {"key": s1_key, "folder": s1_info.get("folder")},
                                   "new_token_init": new_token_init(ctx.config.lm),
                                   "item_text_share": text_share, "cot_sft": info})

    # --- CoT-generation mode -------------------------------------------------------------
    @torch.no_grad()
    def decode_cot(self, ctx, fitted, examples, progress=None, max_new_tokens=None):
        """CoT generation then the constrained answer, the batches shared out among the
        processes of a distributed run (sharded_decode). -> ((n, k) items, (n,) reasoning
        tokens generated, list of (n,) token-id arrays of the reasoning)."""
        dev, k, tok = ctx.device, ctx.topk, fitted.tok
        g = self.config.cot_generation
        model = fitted.model.to(dev).eval()
        catalog = Catalog.build(ctx, tok, dev)
        gen = CotGenerator(tok, model.get_input_embeddings().weight.shape[0], catalog.sid_ids,
                           max_new_tokens or g.max_new_tokens, dev)
        enc = fitted.codec.seqrec(examples, with_answers=False)

        def step(number, b):
            res = recommend(model, b.ids, b.mask, catalog.trie, catalog.sid_ids, width=k, k=k,
                            prefix_hook=gen, head=b.head)
            return {"items": res.items, "lengths": gen.lengths, "tokens": gen.tokens}
        out = sharded_decode(model, enc, tok.pad_token_id, g.batch, dev, step, progress)
        lengths = out["lengths"]
        return out["items"], lengths, [t[:m] for t, m in zip(out["tokens"], lengths)]

    def studies(self, ctx, fitted, ranking, out_dir):
        """Direct mode vs CoT generation on the same fixed test users: accuracy, time per user,
        reasoning length (Table 4's CoT row and its accuracy). In every process of a
        distributed run; the main one writes studies.json to `out_dir` (None in the others)."""
        st = self.config.studies
        if not st.enabled:
            return {}
        test = ctx.split.test
        n = min(st.eval_users or len(test), len(test))
        idx = np.sort(np.random.default_rng(ctx.eval_seed).choice(len(test), n, replace=False))
        ex, ks = test.subset(idx), ctx.config.eval.ks
        cap = self.config.cot_generation.max_new_tokens
        with progress_bar(total=2 * n, unit="user", desc="cot_gream studies") as bar:
            t0 = clock()
            direct = self.rank(ctx, fitted, ex, progress=bar).items
            t1 = clock()
            items, lengths, toks = self.decode_cot(ctx, fitted, ex, progress=bar)
            t2 = clock()
        valid_items = bool((items >= 0).all() and (items < ctx.dataset.n_items).all())
        res = {"eval_users": n, "eval_user_ids": [ctx.dataset.user_ids[u] for u in ex.users],
               "direct": {**summarize(target_ranks(direct, ex.targets), ks),
                          "ms_per_user": round(1000 * (t1 - t0) / n, 3)},
               "cot_generation": {**summarize(target_ranks(items, ex.targets), ks),
                                  "ms_per_user": round(1000 * (t2 - t1) / n, 3),
                                  "max_new_tokens": cap,
                                  "mean_reasoning_tokens": float(lengths.mean()),
                                  "share_at_cap": float((lengths >= cap).mean()),
                                  "all_answers_valid_items": valid_items},
               "cot_over_direct_time": round((t2 - t1) / max(t1 - t0, 1e-9), 2),
               "examples": [{"user": ctx.dataset.user_ids[ex.users[j]],
                             "reasoning": fitted.tok.decode(toks[j].tolist()),
                             "top1": ctx.dataset.item_ids[items[j, 0]],
                             "target": ctx.dataset.item_ids[ex.targets[j]]}
                            for j in range(min(5, n))]}
        # the direct-mode rows on this subset equal the main run's on the same users
        res["direct"]["equals_main_run"] = bool(np.array_equal(direct, ranking.items[idx]))
        if is_main_process():
            atomic_write_json(out_dir / "studies.json", res, indent=1)
        log.info("cot_gream studies (%d users): direct N@10 %.4f %.1f ms/user; CoT generation "
                 "N@10 %.4f %.1f ms/user, %.1f reasoning tokens", n, res["direct"]["NDCG@10"],
                 res["direct"]["ms_per_user"], res["cot_generation"]["NDCG@10"],
                 res["cot_generation"]["ms_per_user"], res["cot_generation"]
                 ["mean_reasoning_tokens"])
        return {k: v for k, v in res.items() if k not in ("eval_user_ids", "examples")}
