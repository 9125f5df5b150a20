"""Speed of the trie-constrained beam search (python -m benchmark bench beam).

One run, one model, one set of prompts, one catalog, three timings:
  generate:      Hugging Face generate, num_beams=50, num_return_sequences=50, with a
                 prefix_allowed_tokens_fn over a Python dict trie (how MiniOneRec decodes);
  ours:          benchmark.beam.recommend (tensor trie, shared KV cache);
  bare forward:  the forward passes any 4-token beam search needs and nothing else: the prompt
                 forward, then M - 1 = 3 cached single-token steps over B x 50 rows (the 4th
                 code's scores come from the 3rd step), no trie and no top-k.
Timings are medians over repeats after one warm-up. The model is a randomly initialised Qwen3
of the given shape; prompts are the shared template with 20 random history SIDs.
"""
import statistics
import time

import numpy as np
import torch

from .beam import SidTrie, encode_prompts, recommend
from .prompt import rec_prompt, sid_string

LEVELS, CODES = 4, 256


def _model(vocab, hidden, layers, heads, kv_heads, seed=0):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(seed)
    cfg = Qwen3Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 3,
                      num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv_heads, head_dim=hidden // heads,
                      max_position_embeddings=1024, pad_token_id=0)
    return Qwen3ForCausalLM(cfg).eval()


def _setup(args):
    from methods.lm.tokenizer import build_tokenizer, sid_tokens
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, CODES, (int(args.items * 1.05), LEVELS)), axis=0)
    codes = codes[rng.permutation(len(codes))[:args.items]]                  # (I, 4) unique
    tok = build_tokenizer([], vocab_size=1000, levels=LEVELS, n_codes=CODES)
    sid_ids = torch.tensor(tok.convert_tokens_to_ids(sid_tokens(LEVELS, CODES))).view(LEVELS,
                                                                                     CODES)
    names = lambda row: sid_string([f"<{'abcd'[l]}_{c}>" for l, c in enumerate(row)])
    prompts = [rec_prompt([names(codes[j]) for j in rng.integers(0, len(codes), 20)])
               for _ in range(args.prompts)]
    batch = tok(prompts, return_tensors="pt", padding=True)
    model = _model(len(tok), args.hidden, args.layers, args.heads, args.kv_heads)
    return model, tok, codes, sid_ids, batch


def _dict_trie(codes, sid_ids):
    """MiniOneRec-style trie: tuple of token ids so far -> allowed next token ids."""
    trie = {}
    ids = sid_ids.numpy()
    for row in codes:
        toks = [int(ids[l, c]) for l, c in enumerate(row)]
        for l in range(LEVELS):
            trie.setdefault(tuple(toks[:l]), set()).add(toks[l])
    return {k: sorted(v) for k, v in trie.items()}


def _time(fn, repeats):
    fn()                                                                     # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def run(args):
    torch.set_num_threads(args.threads or torch.get_num_threads())
    model, tok, codes, sid_ids, batch = _setup(args)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    B, W, T = ids.shape[0], args.width, ids.shape[1]
    trie, dtrie = SidTrie(codes, CODES), _dict_trie(codes, sid_ids)

    def ours():
        recommend(model, ids, mask, trie, sid_ids, width=W, k=W)

    def allowed(batch_id, input_ids):
        return dtrie.get(tuple(input_ids[T:].tolist()), [tok.eos_token_id])

    def generate():
        with torch.no_grad():
            model.generate(input_ids=ids, attention_mask=mask, num_beams=W,
                           num_return_sequences=W, max_new_tokens=LEVELS, min_new_tokens=LEVELS,
                           do_sample=False, top_k=None, top_p=None, temperature=None,
                           length_penalty=0.0, early_stopping=False, num_beam_groups=1,
                           prefix_allowed_tokens_fn=allowed, pad_token_id=tok.pad_token_id,
                           eos_token_id=tok.eos_token_id)

    def bare():
        with torch.no_grad():
            _, _, stepper = encode_prompts(model, ids, mask)
            stepper.expand(W)
            tokens = torch.full((B * W,), int(sid_ids[0, 0]))
            for _ in range(LEVELS - 1):
                stepper.forward(input_ids=tokens)

    t_ours, t_bare = _time(ours, args.repeats), _time(bare, args.repeats)
    t_gen = _time(generate, max(1, args.repeats // 2))
    n_params = sum(p.numel() for p in model.parameters())
    return {"generate_samples_per_s": B / t_gen, "ours_samples_per_s": B / t_ours,
            "bare_forward_samples_per_s": B / t_bare, "speedup_vs_generate": t_gen / t_ours,
            "ratio_to_bare_forward": t_ours / t_bare,
            "setup": {"prompts": B, "prompt_tokens": T, "beam_width": W, "items": len(codes),
                      "model_parameters": n_params, "hidden": args.hidden, "layers": args.layers,
                      "threads": torch.get_num_threads(), "repeats": args.repeats}}


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--items", type=int, default=18357, help="catalog size (Sports: 18,357)")
    p.add_argument("--width", type=int, default=50)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
