"""Speed of the trie-constrained beam search (python -m benchmark bench beam).

One run, one model, one set of prompts, one catalog, three timings:
  generate:      Hugging Face generate, num_beams=50, num_return_sequences=50, with a
                 prefix_allowed_tokens_fn over a Python dict trie (how MiniOneRec decodes), on
                 the whole prompt;
  ours:          protocol.beam.recommend, exactly as the generative methods call it (tensor
                 trie, prompt head run once and shared, one KV cache for all beams);
  bare forward:  the forward passes a 4-token beam search cannot avoid and nothing else: the
                 prompt forward (same shared head), then 3 cached single-token steps over
                 B x 50 rows (the 4th code's scores come from the 3rd step), no trie, no top-k.
                 `bare_forward_4steps_samples_per_s` adds a 4th step.
Timings are medians over repeats after one warm-up. The model is randomly initialised at the
preset's shape (methods/lm/bench/__init__.py PRESETS): cpu (the cpu profile's Qwen3, the default),
smollm2 (SmolLM2-135M's Llama shape, vocabulary padded to 49,152 + SID tokens) or qwen3-0.6b
(the paper's, vocabulary padded to Qwen3's 151,936 + SID tokens); prompts are the shared
template with 20 random history SIDs each (synthetic.py beside this file), tokenized by
--tokenizer.
"""
import statistics
import time

import torch

from protocol.beam import SidTrie, encode_prompts, recommend
from . import PRESETS
from .synthetic import CODES, LEVELS, prompts, random_model


def _setup(args):
    p = prompts(args.prompts, args.items, args.tokenizer)
    model = random_model(args.preset, len(p.tok), args.device, getattr(torch, args.dtype)).eval()
    return model, p.tok, p.codes, p.sid_ids, p.batch


def _dict_trie(codes, sid_ids):
    """MiniOneRec-style trie: tuple of token ids so far -> allowed next token ids."""
    trie = {}
    ids = sid_ids.numpy()
    for row in codes:
        toks = [int(ids[l, c]) for l, c in enumerate(row)]
        for l in range(LEVELS):
            trie.setdefault(tuple(toks[:l]), set()).add(toks[l])
    return {k: sorted(v) for k, v in trie.items()}


def _time(fn, repeats, device):
    def timed():
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t
    timed()                                                                  # warm-up
    return statistics.median(timed() for _ in range(repeats))


def bench_beam(args):
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    model, tok, codes, sid_ids, batch = _setup(args)
    head, rows, mask = batch.head.to(dev), batch.ids.to(dev), batch.mask.to(dev)
    full = torch.cat([head.expand(len(rows), -1), rows], 1)                  # whole prompts
    full_mask = torch.ones_like(full)
    B, W, T = rows.shape[0], args.width, full.shape[1]
    trie, dtrie = SidTrie(codes, CODES).to(dev), _dict_trie(codes, sid_ids)
    sid_dev = sid_ids.to(dev)

    def ours():
        recommend(model, rows, mask, trie, sid_dev, width=W, k=W, head=head)

    def allowed(batch_id, input_ids):
        return dtrie.get(tuple(input_ids[T:].tolist()), [tok.eos_token_id])

    def generate():
        with torch.no_grad():
            model.generate(input_ids=full, attention_mask=full_mask, num_beams=W,
                           num_return_sequences=W, max_new_tokens=LEVELS, min_new_tokens=LEVELS,
                           do_sample=False, top_k=None, top_p=None, temperature=None,
                           length_penalty=0.0, early_stopping=False,
                           prefix_allowed_tokens_fn=allowed, pad_token_id=tok.pad_token_id,
                           eos_token_id=tok.eos_token_id)

    def bare(steps):
        def fn():
            with torch.no_grad():
                _, _, stepper = encode_prompts(model, rows, mask, head)
                stepper.expand(W)
                tokens = torch.full((B * W,), int(sid_ids[0, 0]), device=dev)
                for _ in range(steps):
                    stepper.forward(input_ids=tokens)
        return fn

    t_ours = _time(ours, args.repeats, dev)
    t_bare, t_bare4 = _time(bare(LEVELS - 1), args.repeats, dev), _time(bare(LEVELS), args.repeats, dev)
    t_gen = _time(generate, max(1, args.repeats // 2), dev)
    n_params = sum(p.numel() for p in model.parameters())
    return {"generate_samples_per_s": B / t_gen, "ours_samples_per_s": B / t_ours,
            "bare_forward_samples_per_s": B / t_bare, "speedup_vs_generate": t_gen / t_ours,
            "ratio_to_bare_forward": t_ours / t_bare,
            "bare_forward_4steps_samples_per_s": B / t_bare4,
            "setup": {"preset": args.preset, "arch": PRESETS[args.preset].arch,
                      "tokenizer": args.tokenizer, "device": dev, "dtype": args.dtype,
                      "prompts": B, "prompt_tokens": T, "head_tokens": len(head),
                      "beam_width": W, "items": len(codes), "model_parameters": n_params,
                      "vocab": model.config.vocab_size,
                      "threads": torch.get_num_threads(), "repeats": args.repeats}}
