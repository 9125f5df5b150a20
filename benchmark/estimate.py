"""The plan before the work (`--dry-run`): per method and stage, whether it is cached, stale
(with the reason) or to run, the examples and tokens it will process (counted from the data
and the settings), its estimated peak memory per process (methods/lm/cost.py: weights,
gradients, AdamW state, activations at the micro-batch, answer logits, the beam search's cache)
and its estimated time on this device from a short calibration at the real shape. A stage
whose memory exceeds the device's (or `memory_limit_gb`) is named before any work, with the
largest micro-batch that fits. A real run writes the same plan to plan.json first, and
report.md sets it against what each stage measured (protocol/measure.py).

Token counts are means over a fixed-seed sample of each task's examples, tokenized with the
profile's tokenizer (random SIDs: every item has 4 SID tokens whatever they are), times the
task's size. Times: training tokens x the calibrated seconds per token (validation passes at
a third of a training step's cost), decoding users x the calibrated seconds per prompt of the
beam search; RL rollouts as a beam of G, its candidates trained with a reference forward.
RecBole's stages get memory but no time (early stopping decides their epochs).
"""
import json
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

import methods as registry
from protocol.artifact import Artifact
from protocol.schema import to_dict

SAMPLE = 256                 # examples per task whose tokens are counted
_TOKENIZERS = {}             # a random backbone's tokenizer, built once per process
GiB = 2 ** 30


@dataclass
class Stage:
    method: str
    name: str
    status: str                    # cached | stale | to run
    why: str = ""
    examples: int = 0              # training examples (all epochs), RL prompts, or users
    tokens: int = 0                # tokens processed
    memory: dict = None            # bytes by part, with "total"
    seconds: float = None
    micro_batch: int = None
    fits: int = None               # the largest micro-batch that fits (when this one does not)
    measured_at: str = None        # where the run records what it cost: 'fit_info.sft' (its
                                   # `measured`) or 'timings.rank_s' in the method's manifest

    def as_dict(self):
        return asdict(self)


def _machine():
    """What a calibration's times depend on besides the model, the shape and the threads: the
    manifest's hardware record (CPU model and capability, GPU), and torch's version."""
    import torch

    from protocol.manifest import hardware
    h = hardware()
    return {"torch": torch.__version__,
            **{k: h.get(k) for k in ("cpu_model", "torch_cpu_capability", "gpu")}}


def device_memory(settings):
    """Bytes a process may use: `memory_limit_gb`, else the GPU's total memory, else RAM."""
    if settings.memory_limit_gb:
        return int(settings.memory_limit_gb * GiB)
    if settings.device == "cuda":
        import torch
        return torch.cuda.mem_get_info()[1]
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def results_status(plan, name):
    """(status, why) of a method's results: up to date, stale (which named inputs changed),
    or never run."""
    from .runner import done_metrics
    folder = plan.results_dir / name
    if done_metrics(folder, plan.key(name)) is not None:
        return "cached", ""
    man = folder / "manifest.json"
    if not man.is_file():
        return "to run", "no results yet"
    old, new = json.loads(man.read_text()).get("inputs") or {}, plan.inputs(name)
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "stale", "changed: " + (", ".join(changed) or "the code's version")


def plan_tokenizer(settings, extra=()):
    """The tokenizer the run's generative methods will use (with the SID tokens)."""
    from pathlib import Path

    from methods.lm.backbone import smollm2_tokenizer, with_sid_tokens
    lm, sids = settings.lm, settings.sids
    if lm.backbone == "smollm2":
        return smollm2_tokenizer(sids.levels, sids.codes, extra)
    if lm.backbone != "random":
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(Path(lm.backbone).expanduser())
        return with_sid_tokens(tok, sids.levels, sids.codes, extra)
    return None                      # built from the item texts below


class Estimator:
    """Every stage of a Plan with its counts, memory and time (module docstring)."""

    def __init__(self, plan, calibrate=True):
        from methods.lm.cost import config_of, shape_of
        self.plan, self.s = plan, plan.settings
        self.limit = device_memory(self.s)
        from protocol.measure import rss_mb
        self.process = int((rss_mb() or 0) * 2 ** 20) if self.s.device == "cpu" else 0
        self.generative = any(registry.spec(m).kind == "generative" for m in plan.methods)
        self.cal = None
        if not self.generative:
            return
        self._counter()
        self.cfg = config_of(self.s.lm, len(self.tok) - self._base_vocab)
        self.shape = shape_of(self.cfg, self.s.lm)
        if calibrate:
            self.cal = self._calibrate()

    def _counter(self):
        from methods.lm.tasks import Codec
        from methods.lm.tokenizer import build_tokenizer
        from protocol.sids import SidTable, item_text
        ds, s = self.plan.dataset, self.s
        texts = [item_text(r) for r in ds.items]
        tok = plan_tokenizer(s)
        if tok is None:                  # the random backbone's, trained on the item texts
            k = (ds.root, s.lm.tokenizer_vocab, s.sids.levels, s.sids.codes)
            if k not in _TOKENIZERS:
                _TOKENIZERS[k] = build_tokenizer(texts, vocab_size=s.lm.tokenizer_vocab,
                                                 levels=s.sids.levels, n_codes=s.sids.codes)
            tok = _TOKENIZERS[k]
            self._base_vocab = s.lm.tokenizer_vocab
        else:
            self._base_vocab = len(tok) - s.sids.levels * s.sids.codes
        rng = np.random.default_rng(0)
        codes = np.unique(rng.integers(0, s.sids.codes, (2 * ds.n_items + 16, s.sids.levels)),
                          axis=0)
        codes = codes[rng.permutation(len(codes))[:ds.n_items]]
        self.tok = tok
        self.codec = Codec(tok, SidTable(list(ds.item_ids), codes, 0, 0.0, "plan"), texts, 32)
        some = np.sort(rng.choice(ds.n_items, min(SAMPLE, ds.n_items), False))
        self.item_codec = Codec(tok, SidTable([ds.item_ids[i] for i in some], codes[some], 0,
                                              0.0, "plan"), [texts[i] for i in some], 32)
        n = len(self.plan.split.train)
        self.sample = self.plan.split.train.subset(np.sort(rng.choice(n, min(SAMPLE, n),
                                                                      False)))
        self._lens = {}

    def lens(self, task):
        """(mean prompt tokens, mean answer tokens) of an SFT task, from the sample."""
        if task not in self._lens:
            c, ic, ex = self.codec, self.item_codec, self.sample
            items = np.arange(len(ic.item_texts))           # the sampled items' own codec
            enc = {"seqrec": lambda: c.seqrec(ex), "fusion": lambda: c.fusion(ex),
                   "item2sid": lambda: ic.item2sid(items),
                   "sid2item": lambda: ic.sid2item(items)}[task]()
            self._lens[task] = (len(enc.head) + float(np.mean([len(x) for x in enc.suffixes])),
                                float(np.mean([len(a) for a in enc.answers])))
        return self._lens[task]

    def _calibrate(self):
        from methods.lm.cost import Calibration, calibrate
        p, a = self.lens("seqrec")
        stage1 = self.plan.method_cfgs.get("minionerec")
        import torch

        from .schedule import threads_per_job
        mb = stage1.sft.micro_batch if stage1 else 8
        beam = min(stage1.eval_batch if stage1 else 16, 16)    # the ranking's batch
        steps = 3
        if self.s.device == "cpu":       # a pass of a real backbone takes a minute on 2 cores
            mb, beam, steps = min(mb, 8), min(beam, 4), 2
        threads = torch.get_num_threads()
        job_threads = threads_per_job(self.s, self.s.jobs) if self.s.device == "cpu" else threads
        shape = dict(micro_batch=mb, seq_len=int(p + a), answer=int(a) + 1, beam_prompts=beam,
                     width=self.s.topk, steps=steps)
        # measured once per model, shape, device and thread count: a run after its --dry-run
        # (or a second dry-run) reuses it (14 min at Qwen3-0.6B's shape on a 2-core CPU)
        art = Artifact(self.plan.profile_root.parent / "_cache", "calibration", {
            "model": self.cfg.to_dict(), "lm": to_dict(self.s.lm), "device": self.s.device,
            "threads": job_threads, "hardware": _machine(), **shape})

        def build(_):
            torch.set_num_threads(job_threads)   # as many threads as each of the run's jobs
            try:
                return calibrate(self.cfg, self.s.lm, self.s.device, **shape).as_dict()
            finally:
                torch.set_num_threads(threads)
        reused = art.done
        info = {k: v for k, v in art.get(build).items() if k not in ("measured", "reused")}
        return Calibration(**info, reused=reused)

    # --- stages --------------------------------------------------------------------------
    def sft(self, method, name, status, cfg, tasks, sizes, extra_tokens=0, extra_positions=0):
        """An SFT-like training stage: `tasks` of `sizes` examples, `cfg` an SFTConfig;
        extra_tokens per example (a CoT), extra_positions without a token (latent steps)."""
        from methods.lm.cost import largest_micro_batch_that_fits, training_memory
        lens = [self.lens(t) for t in tasks]
        per_epoch = sum(sizes)
        tokens = cfg.epochs * sum(n * (p + a + extra_tokens + extra_positions)
                                  for n, (p, a) in zip(sizes, lens))
        seq = max(p + a for p, a in lens) + extra_tokens + extra_positions
        answer = max(a for _, a in lens) + 1
        act = self.cal.act_bytes if self.cal else None
        at = lambda mb: training_memory(self.shape, mb, seq, answer, act)   # noqa: E731
        st = Stage(method, name, status, examples=per_epoch * cfg.epochs, tokens=int(tokens),
                   memory=at(cfg.micro_batch), micro_batch=cfg.micro_batch)
        if self.cal:
            c = self.cal
            steps = math.ceil(per_epoch / cfg.batch_size) * cfg.epochs
            micro = math.ceil(per_epoch / cfg.micro_batch) * cfg.epochs
            evals = steps // cfg.eval_every if cfg.eval_every else cfg.epochs
            valid = min(cfg.valid_examples or len(self.plan.split.valid),
                        len(self.plan.split.valid))
            eval_micro = evals * math.ceil(valid / cfg.micro_batch)
            st.seconds = (c.train_s_per_token * (tokens + evals * valid * seq / 3)
                          + c.train_s_per_micro_batch * (micro + eval_micro / 3)
                          + c.optimizer_step_s * steps)
        return self._fit(st, lambda mb: at(mb)["total"], largest_micro_batch_that_fits)

    def decode(self, method, name, status, users, batch, width=None, per_prompt=1.0):
        """Ranking (or a study's decodings) of `users` prompts in batches of `batch`."""
        from methods.lm.cost import beam_memory, largest_micro_batch_that_fits
        p, _ = self.lens("seqrec")
        width = width or self.s.topk
        at = lambda b: beam_memory(self.shape, b, p, width)                 # noqa: E731
        st = Stage(method, name, status, examples=users, tokens=int(users * p),
                   memory=at(batch), micro_batch=batch)
        if self.cal:
            st.seconds = users * self.cal.beam_s_per_prompt * per_prompt
        return self._fit(st, lambda b: at(b)["total"], largest_micro_batch_that_fits)

    def rl(self, method, name, status, rl, prompts, extra_positions=0):
        """GRPO: a beam of G candidates per prompt, then their log-probabilities under the
        policy (forward + backward) and the frozen reference (a third of that).
        extra_positions: latent steps before the answer (LASAR's loop, LatentR3's thoughts),
        each a decoding step of the rollout and a position of the training sequence."""
        from methods.lm.cost import beam_memory, largest_micro_batch_that_fits, training_memory
        p, a = self.lens("seqrec")
        p += extra_positions
        n = min(rl.max_prompts or prompts, prompts) * rl.epochs
        act = self.cal.act_bytes if self.cal else None

        def at(mb):
            train = training_memory(self.shape, mb, p + rl.group_size * (a + 1),
                                    rl.group_size * (a + 1), act, reference=True)
            roll = beam_memory(self.shape, mb, p, rl.group_size)
            out = {**train, "rollout": roll["kv_cache"] + roll["logits"]}
            out["total"] = max(train["total"], train["weights"] + out["rollout"])
            return out
        st = Stage(method, name, status, examples=n, tokens=int(n * (p + rl.group_size * a)),
                   memory=at(rl.micro_batch), micro_batch=rl.micro_batch)
        if self.cal:
            c = self.cal
            rollout = (c.beam_s_per_prompt * max(rl.group_size / self.s.topk, 0.25)
                       * (1 + extra_positions / (a + 1)))     # a latent step ~ a beam step
            train = (c.train_s_per_token * (p + rl.group_size * a)
                     + c.train_s_per_micro_batch / rl.micro_batch) * 4 / 3
            steps = math.ceil(n / rl.batch_size)
            evals = (steps // rl.eval_every if rl.eval_every else rl.epochs) + 1   # + the start
            valid = min(rl.valid_examples or len(self.plan.split.valid),
                        len(self.plan.split.valid))
            st.seconds = (n * (rollout + train) + c.optimizer_step_s * steps
                          + evals * valid * c.beam_s_per_prompt)     # validation NDCG@10
        return self._fit(st, lambda mb: at(mb)["total"], largest_micro_batch_that_fits)

    def _fit(self, st, total_at, largest):
        """The memory beyond the arithmetic added (the calibration's measurement of it: on
        the CPU the process itself, on a GPU torch's temporaries and the CUDA context; without
        a calibration, what the process holds now), then checked against the device's."""
        extra = (self.cal.overhead_bytes if self.cal and self.cal.overhead_bytes is not None
                 else self.process)
        if extra:
            st.memory = {"overhead": int(extra), **st.memory}
            st.memory["total"] += int(extra)
        if self.limit and st.memory["total"] > self.limit:
            st.fits = largest(self.limit, lambda mb: total_at(mb) + extra, st.micro_batch)
        return st

    def recbole(self, method, status, cfg):
        """A RecBole model's training: memory of its parameters, AdamW and the batch's
        full-catalog scores; no time (early stopping decides the epochs)."""
        n_items, hidden = self.plan.dataset.n_items, getattr(cfg, "hidden_size", 64)
        params = n_items * hidden + 4 * hidden * hidden * 8
        mem = {"weights": params * 4, "gradients": params * 4, "optimizer": params * 8,
               "logits": cfg.train_batch_size * n_items * 4 * 3}
        mem["total"] = sum(mem.values())
        return Stage(method, "train (RecBole)", status, examples=len(self.plan.split.train),
                     memory=mem, micro_batch=cfg.train_batch_size, why="time: not estimated")

    def stages(self):
        """Every stage of every planned method, in the order they run; Stage 1 (MiniOneRec's
        SFT, which LASAR, Explicit CoT and LatentR3 reuse) once."""
        from .estimate_methods import STAGE1, method_stages
        out, seen = [], set()
        for m in self.plan.methods:
            for st in method_stages(self, m, *results_status(self.plan, m)):
                k = st.name if st.name == STAGE1 else (st.method, st.name)
                if k not in seen:
                    seen.add(k)
                    out.append(st)
        return out


def plan_stages(plan, calibrate=True, always=False):
    """(stages, calibration or None, device memory) of a Plan; calibrated (`calibrate`) when a
    generative stage is left to run, or (`always`, the dry run) when there is one at all."""
    est = Estimator(plan, calibrate=False)
    stages = est.stages()
    if calibrate and any((always or st.status != "cached")
                         and registry.spec(st.method).kind == "generative" for st in stages):
        est.cal = est._calibrate()
        stages = est.stages()
    return stages, est.cal, est.limit


def too_big(stages):
    """The stages to run whose estimated memory exceeds the device's."""
    return [st for st in stages if st.fits is not None and st.status != "cached"]


def refusal(stages, limit):
    """One line per stage that does not fit, with the largest micro-batch that does."""
    out = []
    for st in too_big(stages):
        need = st.memory["total"] / GiB
        fix = (f"{st.fits} fits" if st.fits else "not even 1 fits: use a smaller backbone, "
               "LoRA or more GPUs' memory")
        out.append(f"{st.method} {st.name}: micro_batch {st.micro_batch} needs ~{need:.1f} GiB "
                   f"at this shape; this device has {limit / GiB:.0f} GiB; {fix}")
    return out


# --- the plan as a table and as plan.json ---------------------------------------------------
def _gib(b):
    return f"{b / GiB:.2f}" if b is not None else "–"


def _short(n):
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return str(n)


PART_LABELS = {"overhead": "other", "weights": "w", "gradients": "g", "optimizer": "adam",
               "activations": "act", "logits": "logit", "kv_cache": "kv", "rollout": "roll"}


def render(tag, stages, cal, limit):
    """The plan of one run (`tag`: its folder) as lines: a row per stage, the total."""
    from tabulate import tabulate

    from reports.fmt import hms
    rows = []
    for st in stages:
        parts = " + ".join(f"{PART_LABELS.get(k, k)} {v / GiB:.2f}"
                           for k, v in (st.memory or {}).items() if k != "total" and v)
        mem = _gib(st.memory["total"]) if st.memory else "–"
        if st.fits is not None:
            mem += f" (too big; {st.fits} fits)" if st.fits else " (too big even at 1)"
        rows.append([st.method, st.name, st.status + (f" ({st.why})" if st.why else ""),
                     _short(st.examples), _short(st.tokens), st.micro_batch or "–", mem, parts,
                     hms(st.seconds)])
    todo = [st for st in stages if st.status != "cached"]
    total = sum(st.seconds or 0 for st in todo)
    unknown = sum(st.seconds is None for st in todo)
    lines = [f"plan of {tag}:",
             tabulate(rows, ["method", "stage", "status", "examples", "tokens", "micro-batch",
                             "peak GiB", "GiB by part", "time"], tablefmt="simple")]
    where = f"{limit / GiB:.0f} GiB per process" if limit else "unknown memory"
    cal_line = (f"calibrated on {cal.device} in {cal.seconds:.0f} s"
                + (" (measured by an earlier plan, _cache/calibration-*)" if cal.reused else "")
                + ": "
                f"{cal.train_s_per_token * 1e3:.3f} ms per training token, "
                f"{cal.beam_s_per_prompt * 1e3:.0f} ms per ranked prompt"
                + (f", {cal.act_bytes:.0f} activation bytes per layer, token and hidden unit"
                   if cal.act_bytes else "") if cal else "no calibration (nothing generative "
                "to run)")
    lines.append(f"to run: {len(todo)} of {len(stages)} stages, ~{hms(total)}"
                 + (f" (+ {unknown} not estimated)" if unknown else "")
                 + f"; {where}; {cal_line}")
    return lines


def plan_record(plan, stages, cal, limit):
    """plan.json: the estimates a real run writes before its work (module docstring)."""
    from protocol.manifest import hardware
    return {"written": time.strftime("%Y-%m-%dT%H:%M:%S"), "hardware": hardware(),
            "memory_limit": limit, "calibration": cal.as_dict() if cal else None,
            "stages": [st.as_dict() for st in stages]}
