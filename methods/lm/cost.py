"""What an LM stage will cost before it runs (benchmark/estimate.py builds the run's plan from
these): its peak memory from the model's shape and the stage's batch, and its time from a short
calibration at the real shape on this device.

Memory of a training step, per process: weights, gradients and AdamW's two moments by
precision (accelerate's `estimate_training_usage` arithmetic: float32 weights, gradients and
optimizer state of the trainable parameters), plus what accelerate leaves out: the activations
kept for the backward pass (per layer and token, ACT_BYTES_PER_HIDDEN bytes per hidden unit, a
transformer block's saved tensors in float32: Korthikanti et al.'s 34 b*s*h half-precision
bytes, doubled; the calibration measures the real figure) and the answer logits (the LM head
runs at the answer positions only, each a vocabulary-wide row, kept three times: logits, log
softmax, gradient). Memory of the beam search: the weights, the prompts' KV cache (shared by
the beams) with the beams' own few tokens, and each step's (prompts x width x vocabulary)
scores. RL adds a frozen reference copy of the weights and the rollout's beam search.
"""
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from protocol.measure import measured

ACT_BYTES_PER_HIDDEN = 68          # per layer, token and hidden unit, float32 (before calibration)
LOGIT_COPIES = 3                   # logits, their log-softmax, their gradient
CUDA_CONTEXT = 512 * 2 ** 20       # the CUDA context and cuBLAS workspace, outside torch's count


@dataclass
class Shape:
    """An LM's size as the costs need it (the backbone with the SID and method tokens)."""
    params: int
    trainable: int
    embedding: int                 # the (tied) embedding's parameters
    layers: int
    hidden: int
    kv_heads: int
    head_dim: int
    vocab: int
    weight_bytes: int              # 4 for float32 weights, 2 for bfloat16


def config_of(lm, new_tokens=1024 + 8):
    """The transformers config of the profile's backbone (`lm`: protocol.settings.LMConfig):
    the random Qwen3's sizes, or the folder's config.json; the vocabulary grown by the SID and
    method tokens the run adds."""
    from transformers import AutoConfig, Qwen3Config
    if lm.backbone == "random":
        cfg = Qwen3Config(vocab_size=lm.tokenizer_vocab + new_tokens,
                          hidden_size=lm.hidden_size, intermediate_size=lm.intermediate_size,
                          num_hidden_layers=lm.num_layers, num_attention_heads=lm.num_heads,
                          num_key_value_heads=lm.num_kv_heads,
                          head_dim=lm.hidden_size // lm.num_heads,
                          max_position_embeddings=lm.max_positions, tie_word_embeddings=True)
        return cfg
    if lm.backbone == "smollm2":        # the GGUF's metadata (no weights are read)
        from .backbone import _smollm2_gguf
        gguf = _smollm2_gguf()
        cfg = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        cfg.vocab_size += new_tokens     # its tokenizer has exactly the embedding's 49,152 rows
        return cfg
    cfg = AutoConfig.from_pretrained(Path(lm.backbone).expanduser())
    cfg.vocab_size = max(cfg.vocab_size, _tokenizer_size(lm.backbone) + new_tokens)
    return cfg


def _tokenizer_size(folder):
    from transformers import AutoTokenizer
    return len(AutoTokenizer.from_pretrained(Path(folder).expanduser()))


def shape_of(cfg, lm):
    """The Shape of the model `cfg` describes, built on the meta device (no memory) the way
    the methods build it (methods/lm/backbone.py): with LoRA, peft's adapters on every linear
    layer and a trained copy of the (tied) embedding."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    from .backbone import add_lora, tie_output_to_input
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(cfg)
    # tied outside the context, whose parameter hook would give the head a new meta tensor;
    # the adapters are created for real (small), the wrapped copies stay on the meta device
    tied = getattr(cfg, "tie_word_embeddings", False)
    if tied:
        tie_output_to_input(model)
    emb = model.get_input_embeddings().weight.numel()
    if lm.lora:
        model = add_lora(model, lm)
        if tied:
            tie_output_to_input(model)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return Shape(params, trainable, emb, cfg.num_hidden_layers, cfg.hidden_size,
                 cfg.num_key_value_heads, head_dim, cfg.vocab_size,
                 2 if lm.dtype == "bfloat16" else 4)


def training_memory(shape, micro_batch, seq_len, answer_positions, act_bytes=None,
                    reference=False):
    """Peak bytes of one training step per process, by part (module docstring); `reference`:
    RL's frozen copy of the weights."""
    from accelerate.commands.estimate import estimate_training_usage
    full = estimate_training_usage(shape.trainable * 4, "float32")
    weights = shape.params * shape.weight_bytes
    per = act_bytes if act_bytes is not None else ACT_BYTES_PER_HIDDEN
    parts = {"weights": weights + (weights if reference else 0),
             "gradients": full["gradients"], "optimizer": full["optimizer"],
             "activations": int(shape.layers * micro_batch * seq_len * shape.hidden * per),
             "logits": int(micro_batch * answer_positions * shape.vocab * 4 * LOGIT_COPIES)}
    parts["total"] = sum(parts.values())
    return parts


def beam_memory(shape, prompts, prompt_len, width, levels=4, kv_bytes=4):
    """Peak bytes of one beam-search batch: weights, the prompts' KV cache and the beams' own
    tokens, one step's scores over the vocabulary for every beam (module docstring)."""
    per_token = shape.layers * 2 * shape.kv_heads * shape.head_dim * kv_bytes
    parts = {"weights": shape.params * shape.weight_bytes,
             "kv_cache": int(per_token * prompts * (prompt_len + width * levels)),
             "logits": int(prompts * width * shape.vocab * 4 * LOGIT_COPIES)}
    parts["total"] = sum(parts.values())
    return parts


def largest_micro_batch_that_fits(limit, memory_at, below):
    """The largest micro-batch m, a power of two below `below` (the one that does not fit),
    with memory_at(m) <= limit; 0 when not even 1 fits."""
    best, m = 0, 1
    while m < below and memory_at(m) <= limit:
        best, m = m, m * 2
    return best


# --- calibration: a few timed steps at the real shape ---------------------------------------
@dataclass
class Calibration:
    """Measured on this device at the stage's shape: seconds per training token (forward and
    backward) and per micro-batch on top, seconds per AdamW step, seconds per prompt of a beam
    search at the ranking width, activation
    bytes per layer, token and hidden unit (from the peak memory at two micro-batches; None
    where the peak could not be read), the memory a step held beyond the arithmetic, and how
    it was measured."""
    train_s_per_token: float
    train_s_per_micro_batch: float
    optimizer_step_s: float
    beam_s_per_prompt: float
    act_bytes: float | None
    overhead_bytes: int | None
    device: str
    micro_batch: int
    seq_len: int
    seconds: float
    reused: bool = False         # read from an earlier plan's measurement (benchmark/estimate.py)

    def as_dict(self):
        return asdict(self)


def _model(cfg, device, dtype):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).to(device=device, dtype=dtype)


def _batch(cfg, micro_batch, seq_len, answer, device, rng):
    """Random token rows of the stage's length: [head of 32 | rows] with `answer` labels."""
    from .forward import Batch
    head = torch.as_tensor(rng.integers(10, cfg.vocab_size, 32))
    rows = torch.as_tensor(rng.integers(10, cfg.vocab_size, (micro_batch, seq_len - 32)))
    labels = torch.full_like(rows, -100)
    labels[:, -answer:] = rows[:, -answer:]
    return Batch(head, rows, torch.ones_like(rows), labels[:, -answer:]).to(device)


def calibrate(cfg, lm, device="cpu", micro_batch=4, seq_len=128, answer=5, beam_prompts=4,
              width=50, steps=3):
    """Time `steps` forward-backward passes (after one untimed) at `micro_batch` rows of
    `seq_len` tokens and at a quarter of it, AdamW's step apart (once per optimizer step, not per
    micro-batch), and one beam search of `beam_prompts` prompts at `width`, on a randomly
    initialised model of `cfg` built as the methods build it (`lm`: LoRA or full) at their
    precision (training: bf16 autocast on any device when lm.mixed_precision is bf16, as the
    SFT trainer's accelerate does; decoding: backbone.autocast); the activation slope from the
    peak memory at the two micro-batches. -> Calibration."""
    from contextlib import nullcontext

    from protocol.beam import SidTrie, recommend
    from .backbone import add_lora, autocast
    from .forward import AnswerCE
    t0 = time.perf_counter()
    model = _model(cfg, device, torch.bfloat16 if lm.dtype == "bfloat16" else torch.float32)
    if lm.lora:
        model = add_lora(model, lm)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    def amp():
        return (torch.autocast(device, dtype=torch.bfloat16) if lm.mixed_precision == "bf16"
                else nullcontext())
    rng = np.random.default_rng(0)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def forward_backward(mb):
        b = _batch(cfg, mb, seq_len, answer, device, rng)
        sync()
        t = time.perf_counter()
        with amp():
            loss, n, _, _ = AnswerCE(model)(b)
        (loss / n).backward()
        sync()
        return time.perf_counter() - t

    def optimizer_step():
        sync()
        t = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t
    forward_backward(micro_batch)                      # first allocations, optimizer state
    optimizer_step()
    peaks, secs, opt_s = {}, {}, []
    for mb in sorted({max(1, micro_batch // 4), micro_batch}):
        with measured() as m:
            times = []
            for _ in range(steps):
                times.append(forward_backward(mb))
                opt_s.append(optimizer_step())
            secs[mb] = statistics.median(times)
        peaks[mb] = m.get("peak_gpu_mb", m.get("peak_rss_mb")), m.get("rss_reset", True)
    lo, hi = min(peaks), max(peaks)
    # a micro-batch's time as a fixed part (the Python and kernel-launch overhead that
    # dominates a small model) plus a part per token: the line through the two points
    per_token = (secs[hi] - secs[lo]) / ((hi - lo) * seq_len) if hi > lo else 0.0
    if per_token <= 0:
        per_token, fixed = secs[hi] / (hi * seq_len), 0.0
    else:
        fixed = max(secs[lo] - per_token * lo * seq_len, 0.0)
    act = None                   # from the peak's growth, where it grew enough to be read
    if hi > lo and all(r for _, r in peaks.values()) and peaks[hi][0] - peaks[lo][0] > 32:
        per_row = (peaks[hi][0] - peaks[lo][0]) * 2 ** 20 / (hi - lo)
        act = per_row / (seq_len * cfg.num_hidden_layers * cfg.hidden_size)
    # what the step held beyond the arithmetic: on the CPU the process itself (libraries, data,
    # the allocator's slack), on a GPU torch's temporaries; plus the CUDA context there
    overhead = None
    if peaks[hi][0] is not None:
        est = training_memory(shape_of(cfg, lm), hi, seq_len, answer, act)["total"]
        overhead = max(peaks[hi][0] * 2 ** 20 - est, 0) + (CUDA_CONTEXT if device == "cuda"
                                                          else 0)
    # one beam search at the ranking width over a random catalog's SID tokens
    model.eval()
    n_codes = 256
    sid_ids = torch.arange(cfg.vocab_size - 4 * n_codes, cfg.vocab_size).view(4, n_codes)
    codes = np.unique(rng.integers(0, n_codes, (2000, 4)), axis=0)
    trie = SidTrie(codes, n_codes).to(device)
    rows = torch.as_tensor(rng.integers(10, cfg.vocab_size - 4 * n_codes,
                                        (beam_prompts, seq_len - 32))).to(device)
    head = torch.as_tensor(rng.integers(10, 1000, 32)).to(device)
    with torch.no_grad(), autocast(device, lm):
        recommend(model, rows, torch.ones_like(rows), trie, sid_ids.to(device), width=width,
                  k=width, head=head)                  # untimed
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        recommend(model, rows, torch.ones_like(rows), trie, sid_ids.to(device), width=width,
                  k=width, head=head)
        if device == "cuda":
            torch.cuda.synchronize()
        beam = (time.perf_counter() - t) / beam_prompts
    return Calibration(per_token, fixed, statistics.median(opt_s), beam, act, overhead,
                       device, micro_batch, seq_len, round(time.perf_counter() - t0, 1))
