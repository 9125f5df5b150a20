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
"""
import json
import logging
import time

import numpy as np
import torch

from benchmark.beam import SidTrie, recommend
from benchmark.config import config_hash
from benchmark.metrics import summarize, target_ranks
from benchmark.progress import progress as progress_bar

from . import register
from .lm.forward import collate
from .lm.generative import GenerativeMethod
from .lm.sft import SFTConfig, Trainer, load_weights, write_done
from .lm.tasks import Encoded
from .lm.tokenizer import sid_token_table

log = logging.getLogger(__name__)
THINK, END_THINK = "<think>", "</think>"


def add_think_tokens(model, tok):
    """<think> and </think> as single tokens (after Stage 1); new rows at the mean embedding."""
    missing = [t for t in (THINK, END_THINK) if t not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
        model.resize_token_embeddings(len(tok), mean_resizing=True)
    return model


def pool_indices(n_train, k, seed):
    """The training examples given a teacher CoT: LASAR's rule (so the CoT cache is shared)."""
    if not k or k >= n_train:
        return np.arange(n_train)
    return np.sort(np.random.default_rng(seed + 1).choice(n_train, k, replace=False))


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


@register("cot_gream")
class ExplicitCoT(GenerativeMethod):
    display_name = "Explicit CoT (GREAM)"
    depends_on = ("minionerec",)
    cost = 20

    def stage1(self, ctx):
        """MiniOneRec's SFT model (reused, or trained there once) with the think tokens."""
        from .minionerec import MiniOneRec
        s1 = MiniOneRec(ctx.config_of("minionerec"))
        model, tok, codec = s1.setup(ctx)
        model, info = s1.run_sft(ctx, model, tok, codec)
        add_think_tokens(model, tok)
        return model, tok, codec, s1.sft_key(ctx), info

    def sft_key(self, ctx, s1_key=None):
        c = self.config
        return config_hash({"stage1": s1_key, "pool": c["pool_examples"], "teacher": c["teacher"],
                            "max_cot_tokens": c["max_cot_tokens"], "direct": c["direct_task"],
                            "sft": c["sft"], "seed": ctx.seed})

    def fit(self, ctx):
        model, tok, codec, s1_key, s1_info = self.stage1(ctx)
        c = self.config
        train = ctx.split.train
        examples = train.subset(pool_indices(len(train), c["pool_examples"], ctx.seed))
        folder = ctx.results_dir / "_work" / f"cot-gream-{self.sft_key(ctx, s1_key)}"
        done = folder / "done.json"
        if done.is_file():
            log.info("cot_gream: CoT SFT model reused from %s", folder)
            load_weights(model, folder / "best")
            info = json.loads(done.read_text())
        else:
            from .lasar.teacher import teacher_cots
            t0 = time.perf_counter()
            cots = teacher_cots(ctx, examples, c["teacher"])
            tasks, lens = cot_tasks(codec, examples, cots, tok.convert_tokens_to_ids(THINK),
                                    tok.convert_tokens_to_ids(END_THINK), c["max_cot_tokens"],
                                    c["direct_task"])
            valid = codec.seqrec(self.valid_subsample(ctx))
            s = c["sft"]
            cfg = SFTConfig(lr=s["lr"], epochs=s["epochs"], batch_size=s["batch_size"],
                            micro_batch=s["micro_batch"], patience=s["patience"],
                            eval_every=s["eval_every"], warmup_ratio=s["warmup_ratio"],
                            weight_decay=s["weight_decay"], max_grad_norm=s["max_grad_norm"],
                            mixed_precision=ctx.config["lm"]["mixed_precision"], seed=ctx.seed)
            log.info("cot_gream: SFT on %s; teacher CoTs %.0f tokens on average (cap %d)",
                     "+".join(f"{len(t)} {t.task}" for t in tasks), np.mean(lens),
                     c["max_cot_tokens"])
            folder.mkdir(parents=True, exist_ok=True)
            trainer = Trainer(model, tok, cfg, folder, ctx.device)
            info = trainer.fit(tasks, valid)
            info.update(seconds=round(time.perf_counter() - t0, 1), folder=str(folder),
                        examples={t.task: len(t) for t in tasks},
                        mean_cot_tokens=float(np.mean(lens)),
                        cot_truncated_share=float(np.mean(lens > c["max_cot_tokens"])))
            if not trainer.acc.is_main_process:
                self.model, self.tok, self.codec = model, tok, codec
                return
            load_weights(model, folder / "best")
            write_done(folder, info)
        self.fit_info = {"stage1": {"key": s1_key, "folder": s1_info.get("folder")},
                         "cot_sft": info}
        self.model, self.tok, self.codec = model.eval(), tok, codec

    # --- CoT-generation mode -------------------------------------------------------------
    @torch.no_grad()
    def decode_cot(self, ctx, examples, progress=None, max_new_tokens=None, batch=None):
        """CoT generation then the constrained answer. -> ((n, k) items, (n,) reasoning
        tokens generated, list of (n,) token-id arrays of the reasoning)."""
        dev, k = ctx.device, ctx.topk
        g = self.config["cot_generation"]
        model = self.model.to(dev).eval()
        levels, n_codes = ctx.config["sids"]["levels"], ctx.config["sids"]["codes"]
        trie = SidTrie(ctx.sids().codes, n_codes).to(dev)
        sid_ids = sid_token_table(self.tok, levels, n_codes, dev)
        gen = CotGenerator(self.tok, model.get_input_embeddings().weight.shape[0], sid_ids,
                           max_new_tokens or g["max_new_tokens"], dev)
        enc = self.codec.seqrec(examples, with_answers=False)
        order = np.argsort([len(s) for s in enc.suffixes], kind="stable")
        items = np.empty((len(examples), k), dtype=np.int64)
        lengths = np.empty(len(examples), dtype=np.int64)
        texts = [None] * len(examples)
        bs = batch or g["batch"]
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            b = collate(enc, idx, self.tok.pad_token_id, with_answers=False).to(dev)
            res = recommend(model, b.ids, b.mask, trie, sid_ids, width=k, k=k, prefix_hook=gen,
                            head=b.head)
            items[idx] = res.items.cpu().numpy()
            lengths[idx] = gen.lengths.cpu().numpy()
            toks = gen.tokens.cpu().numpy()
            for j, r in enumerate(idx):
                texts[r] = toks[j, :lengths[r]]
            if progress is not None:
                progress.update(len(idx))
        return items, lengths, texts

    def studies(self, ctx, topk, out_dir):
        """Direct mode vs CoT generation on the same fixed test users: accuracy, time per user,
        reasoning length (Table 4's CoT row and its accuracy)."""
        st = self.config["studies"]
        if not st["enabled"]:
            return {}
        test = ctx.split.test
        n = min(st["eval_users"] or len(test), len(test))
        idx = np.sort(np.random.default_rng(ctx.seed).choice(len(test), n, replace=False))
        ex, ks = test.subset(idx), ctx.config["eval"]["ks"]
        cap = self.config["cot_generation"]["max_new_tokens"]
        with progress_bar(total=2 * n, unit="user", desc="cot_gream studies") as bar:
            t0 = time.perf_counter()
            direct = self.rank(ctx, ex, progress=bar)
            t1 = time.perf_counter()
            items, lengths, toks = self.decode_cot(ctx, ex, progress=bar)
            t2 = time.perf_counter()
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
                             "reasoning": self.tok.decode(toks[j].tolist()),
                             "top1": ctx.dataset.item_ids[items[j, 0]],
                             "target": ctx.dataset.item_ids[ex.targets[j]]}
                            for j in range(min(5, n))]}
        # the direct-mode rows on this subset equal the main run's on the same users
        res["direct"]["equals_main_run"] = bool(np.array_equal(direct, topk[idx]))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "studies.json").write_text(json.dumps(res, indent=1))
        log.info("cot_gream studies (%d users): direct N@10 %.4f %.1f ms/user; CoT generation "
                 "N@10 %.4f %.1f ms/user, %.1f reasoning tokens", n, res["direct"]["NDCG@10"],
                 res["direct"]["ms_per_user"], res["cot_generation"]["NDCG@10"],
                 res["cot_generation"]["ms_per_user"], res["cot_generation"]
                 ["mean_reasoning_tokens"])
        return {k: v for k, v in res.items() if k not in ("eval_user_ids", "examples")}
