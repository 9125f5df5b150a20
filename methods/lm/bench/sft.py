"""Speed of one SFT optimizer step (python -m benchmark bench sft).

What is timed: one optimizer step as methods/lm/sft.py's Trainer takes it on one micro-batch:
the answer-token cross-entropy (methods.lm.forward.AnswerCE: [head | left-padded rows], the
head run once and its KV cache shared by every row, logits at the answer positions only),
backward, gradient clipping at 1.0, AdamW step, zero_grad. The batch: `--batch` rows of the
shared prompt over random 20-item histories of a random Sports-sized catalog, each answered by
a random target's 4 SID tokens + eos (synthetic.py here: Codec and collate, as the generative
methods build theirs), the same batch every step. The model: randomly initialised at the
preset's shape (PRESETS in __init__.py here). `--warmup` untimed steps, then the median of
`--repeats` timed steps (the GPU synchronised around each).

Precision (--dtype): float32 (the cpu default, and what lm.dtype=float32 with
lm.mixed_precision=no trains in); bf16-autocast (float32 weights under bf16 autocast, the
Trainer with lm.mixed_precision=bf16; the cuda default); bfloat16 (bf16 weights).

Reported:
  tokens_per_step   tokens the step processes: the head once + the non-pad tokens of the rows
                    (prompt suffix + answer); padding positions are computed but not counted;
  tokens_per_s      tokens_per_step / median step seconds; samples_per_s = batch / seconds;
  mfu               on a GPU: 6 * parameters * tokens_per_s / peak dense bf16 FLOP/s of the
                    device (PEAK_BF16 below, or --peak-flops; an unknown device: null). The
                    usual 6N rule: it counts the vocabulary projection at every token although
                    the step computes logits at the answer positions only, and it leaves out
                    attention scores. `mfu_matmul` counts the matmuls the step does do:
                    6 * (non-embedding parameters * tokens + embedding parameters * logit rows);
  losses            the loss of every step, in order: on one repeated batch, a step that learns
                    lowers it (tests/test_bench_sft.py).
With --epoch-of DATASET: the tokens of one epoch of MiniOneRec's SFT (its tasks and its batch
and micro-batch under --profile, LASAR's Stage 1 too) on the real histories and item texts with
this tokenizer, counted as the Trainer batches them, and the epoch's time extrapolated from
this run's tokens/s (a count and an extrapolation, not a measurement).
"""
import statistics
import time
from contextlib import nullcontext

import numpy as np
import torch

from protocol.manifest import cpu_model

from . import PRESETS
from .synthetic import CODES, LEVELS, catalog, prompts, random_model, tokenizer

# Peak dense (no sparsity) bf16 tensor FLOP/s by device name; the first substring that matches
# wins (so "H100 PCIe" before "H100", "A100" before "A10", "L40S" before "L40" before "L4").
PEAK_BF16 = (("H200 NVL", 836e12), ("H200", 989e12), ("H100 PCIe", 756e12),
             ("H100 NVL", 835e12), ("H100", 989e12), ("A100", 312e12), ("L40S", 362e12),
             ("L40", 181e12), ("L4", 121e12), ("A10", 125e12), ("RTX 4090", 165e12),
             ("RTX 3090", 71e12))


def peak_bf16(name):
    """(peak FLOP/s, the table entry that matched) for a device name, else (None, None)."""
    for key, flops in PEAK_BF16:
        if key.lower() in name.lower():
            return flops, key
    return None, None


def sft_step(model, opt, batch, autocast, max_grad_norm=1.0):
    """One optimizer step on `batch` as the Trainer takes it. -> mean answer-token loss."""
    from ..forward import AnswerCE
    with autocast:
        loss, n, _, _ = AnswerCE(model)(batch)
        loss = loss / n
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def setup(args):
    """(model, optimizer, batch on the device, autocast context, dtype name, Prompts)."""
    dev = args.device
    dtype = args.dtype or ("bf16-autocast" if dev == "cuda" else "float32")
    p = prompts(args.batch, args.items, args.tokenizer, with_answers=True)
    weights = torch.bfloat16 if dtype == "bfloat16" else torch.float32
    model = random_model(args.preset, len(p.tok), dev, weights).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    autocast = (torch.autocast(device_type=dev, dtype=torch.bfloat16)
                if dtype == "bf16-autocast" else nullcontext())
    return model, opt, p.batch.to(dev), autocast, dtype, p


def batch_counts(batch):
    """Token counts of a Batch: (processed tokens: head once + non-pad rows, answer tokens,
    mean prompt tokens per example: head + suffix)."""
    H, rows = len(batch.head), int(batch.mask.sum())
    answers = int((batch.labels != -100).sum())
    return H + rows, answers, H + (rows - answers) / batch.ids.shape[0]


def bench_sft(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    model, opt, batch, autocast, dtype, _ = setup(args)

    def timed():
        if dev == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        loss = sft_step(model, opt, batch, autocast)
        if dev == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, loss

    runs = [timed() for _ in range(args.warmup + args.repeats)]
    secs = [s for s, _ in runs[args.warmup:]]
    sec = statistics.median(secs)
    tokens, answers, mean_prompt = batch_counts(batch)
    B, A = batch.ids.shape[0], batch.labels.shape[1]
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    logit_rows = B * (A + 1) + 1                     # logits_to_keep=A+1, and the head's one
    matmul_flops = 6 * ((params - embedding) * tokens + embedding * logit_rows)
    name = torch.cuda.get_device_name() if dev == "cuda" else cpu_model()
    peak, matched = (args.peak_flops, "--peak-flops") if args.peak_flops else (
                     peak_bf16(name) if dev == "cuda" else (None, None))
    tps = tokens / sec
    res = {"tokens_per_s": tps, "samples_per_s": B / sec, "seconds_per_step": sec,
           "mfu": 6 * params * tps / peak if peak else None,
           "mfu_matmul": matmul_flops / sec / peak if peak else None,
           "peak_flops": peak, "peak_flops_source": matched,
           "parameters": params, "non_embedding_parameters": params - embedding,
           "tokens_per_step": tokens, "answer_tokens_per_step": answers,
           "unshared_tokens_per_step": tokens + (B - 1) * len(batch.head),
           "head_tokens": len(batch.head), "mean_prompt_tokens": mean_prompt,
           "flops_per_step_6n": 6 * params * tokens, "matmul_flops_per_step": matmul_flops,
           "losses": [round(l, 5) for _, l in runs],
           "step_seconds": [round(s, 4) for s in secs],
           "device": dev, "device_name": name, "preset": args.preset,
           "arch": PRESETS[args.preset].arch, "dtype": dtype, "tokenizer": args.tokenizer,
           "vocab": model.config.vocab_size, "batch": B, "lr": args.lr, "warmup": args.warmup,
           "repeats": args.repeats, "threads": torch.get_num_threads()}
    return res


def epoch_tokens(ds, split, settings, method_cfg, tokenizer_kind):
    """Tokens of one epoch of MiniOneRec's SFT (= LASAR's Stage 1) on the dataset `ds` and its
    `split`, with the shared `settings` and MiniOneRec's resolved configuration `method_cfg`
    (a dict), batched as the Trainer batches them with one process: each batch of `batch_size`
    examples of one task sorted by suffix length and cut into micro-batches; a micro-batch runs
    its head once and pads its rows to the longest. The SIDs are random (every item has 4 SID
    tokens whichever they are); the histories, targets and item texts are the dataset's.
    -> dict."""
    from protocol.sids import SidTable, item_text

    from ..sft import epoch_batches
    from ..tasks import Codec, build_tasks
    s, m = settings, method_cfg
    sft = m["sft"]
    texts = [item_text(r) for r in ds.items]
    if tokenizer_kind == "bpe":           # as the `random` backbone builds it (lm.tokenizer_vocab)
        from ..tokenizer import build_tokenizer
        tok = build_tokenizer(texts, vocab_size=s.lm.tokenizer_vocab, levels=LEVELS,
                              n_codes=CODES)
    else:
        tok = tokenizer(tokenizer_kind)
    codes = catalog(np.random.default_rng(0), ds.n_items)
    codec = Codec(tok, SidTable(list(ds.item_ids), codes, 0, 0.0, "bench"), texts,
                  m["max_text_tokens"])
    tasks = build_tasks(codec, split, m["tasks"], ds.n_items, m["max_align_items"], s.seed)
    out = {t.task: {"examples": len(t), "head_tokens": len(t.head), "tokens": 0,
                    "positions": 0, "micro_batches": 0} for t in tasks}
    batches = epoch_batches(tasks, sft["batch_size"], s.seed, 0)
    for t, idx in batches:
        enc = tasks[t]
        idx = idx[np.argsort([len(enc.suffixes[i]) for i in idx], kind="stable")]
        lens = np.array([len(enc.suffixes[i]) + len(enc.answers[i]) for i in idx])
        o = out[enc.task]
        for j in range(0, len(idx), sft["micro_batch"]):
            chunk = lens[j:j + sft["micro_batch"]]
            o["tokens"] += len(enc.head) + int(chunk.sum())
            o["positions"] += len(enc.head) + len(chunk) * int(chunk.max())
            o["micro_batches"] += 1
    for t in tasks:
        o = out[t.task]
        o["mean_prompt_tokens"] = len(t.head) + float(np.mean([len(x) for x in t.suffixes]))
        o["mean_answer_tokens"] = float(np.mean([len(x) for x in t.answers]))
    total = lambda k: sum(o[k] for o in out.values())
    n = total("examples")
    return {"dataset": ds.name, "tasks": out, "examples": n,
            "tokens": total("tokens"), "positions": total("positions"),
            "unshared_tokens": sum(o["examples"] * (o["mean_prompt_tokens"]
                                                    + o["mean_answer_tokens"])
                                   for o in out.values()),
            "mean_history": float(np.mean(split.train.lengths)),
            "batch_size": sft["batch_size"], "micro_batch": sft["micro_batch"],
            "epochs": sft["epochs"], "steps_per_epoch": len(batches)}
