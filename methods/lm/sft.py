"""Supervised fine-tuning shared by every generative method (PROTOCOL sections 3, 5, 7).

Loss on answer tokens only; AdamW; cosine schedule with warmup (ratio 0.08); the effective
batch is `batch_size` examples, reached by gradient accumulation over micro-batches (and split
across processes under `accelerate launch`: DDP averages the gradients, so one process or
several take the same optimizer steps). Validation loss on a fixed subsample of validation
examples every `eval_every` optimizer steps and at the end of each epoch; early stopping after
`patience` evaluations without improvement; `best/` holds the best model (save_pretrained).

Crash safety: every evaluation writes `last/` (model + optimizer, scheduler, step, early-stop
state, torch's random state) atomically. A rerun resumes from it. Batch order is a pure function
of (seed, epoch) and torch's random state (LoRA dropout) the stage's own (`own_rng`), so a
resumed run takes exactly the steps an uninterrupted one would, whatever ran before it in the
process (tests/test_lm_train.py kills LC-Rec's SFT, tests/test_resume.py LASAR's Stage 2).
TensorBoard scalars go to `<run>/tensorboard`. Every step's training loss and objective terms
(mean per example: LASAR's `aligned_share`, `mean_n`, ...) are also a line of `train_log.jsonl`;
the fit info holds their means per evaluation interval (`train_curve`) and over the whole run
(`train_means`).
"""
import json
import logging
from contextlib import nullcontext
import math
import shutil
from pathlib import Path

import numpy as np
import torch

from protocol.artifact import RESUME_CHECKPOINT
from protocol.errors import brief
from protocol.io import replace_dir
from protocol.progress import progress

from .forward import AnswerCE, make_batch

log = logging.getLogger(__name__)
# hook(stage, step) for each, after every training checkpoint is written: `stage` is the
# artifact kind the loop trains (sft, lasar-stage2, lasar-mixed, cot-gream, rl, lasar-rl,
# latentr3-sft, latentr3-rl), `step` the optimizer step. Empty in a run; the resume tests
# install one that ends the process there (tests/crash_run.py).
CHECKPOINT_HOOKS = []


def after_checkpoint(stage, step):
    for hook in CHECKPOINT_HOOKS:
        hook(stage, step)


def rng_state():
    """torch's random state (what dropout draws from: the CPU's, and the GPUs' when present),
    for a checkpoint."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def restore_rng(state):
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng"):
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def own_rng():
    """A training stage's own torch random state: the caller's is put back when the stage ends,
    so a stage trained in this process and one loaded from its artifact leave what follows
    (the initialisation of new token rows, the next stage) the same. Inside, the stage seeds it
    at its first step or restores it from its checkpoint."""
    return torch.random.fork_rng(devices=range(torch.cuda.device_count()))


def epoch_batches(tasks, batch_size, seed, epoch):
    """[(task index, example indices)] of one epoch: each task shuffled and cut into batches,
    then the batches of all tasks shuffled together. Deterministic in (seed, epoch)."""
    rng = np.random.default_rng([seed, epoch])
    out = []
    for t, enc in enumerate(tasks):
        perm = rng.permutation(len(enc))
        out += [(t, perm[i:i + batch_size]) for i in range(0, len(perm), batch_size)]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


def save_model(model, tok, folder):
    """save_pretrained into `folder`, atomically (written beside it, then renamed)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    return tmp


def load_best(model):
    """The loader of a training artifact (protocol/artifact.py): its best weights into
    `model`. -> the artifact's info with the folder it lives in."""
    def load(path, info):
        load_weights(model, path / "best")
        return {**info, "folder": str(path)}
    return load


def save_checkpoint(model, tok, folder, opt, sched, **loop):
    """The checkpoint `folder` (`last/`), replaced whole: weights, optimizer, scheduler, torch's
    random state and the loop's own state `loop` (step, best, curve, ...)."""
    tmp = save_model(model, tok, folder)
    torch.save({**loop, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                **rng_state()}, tmp / "trainer_state.pt")
    replace_dir(tmp, folder)


def resume(model, folder, opt, sched, seed, what):
    """The loop state saved by save_checkpoint in `folder`, with weights, optimizer, scheduler
    and random state restored; None when there is none (or it is unreadable): torch's random
    state is then seeded with `seed`, as a fresh stage starts (inside `own_rng`)."""
    st = resume_state(model, folder, what)
    if st is None:
        torch.manual_seed(seed)
        return None
    opt.load_state_dict(st["optimizer"])
    sched.load_state_dict(st["scheduler"])
    restore_rng(st)
    log.info("resuming %s from %s at step %d", what, folder, st["step"])
    return st


def resume_state(model, folder, what):
    """The trainer state saved in the checkpoint `folder` (`last/`), its weights loaded into
    `model`; None when there is none. An unreadable checkpoint (truncated, corrupt) is one
    logged line and removed, and `model` keeps its weights: training starts from the
    beginning (tests/test_caches.py::test_an_unreadable_checkpoint_is_trained_again)."""
    path = Path(folder) / "trainer_state.pt"
    if not path.is_file():
        return None
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
        load_weights(model, folder)
        return st
    except Exception as e:
        log.warning("%s checkpoint %s is unreadable (%s); training again from the start",
                    what, folder, brief(e))
        shutil.rmtree(folder, ignore_errors=True)
        return None


def load_weights(model, folder):
    """Load the weights saved by save_model into `model` (full model, peft adapter, or a
    wrapper with its own `load_folder`, such as LASAR's LatentLM). Every file is read before
    `model` changes, so an unreadable one leaves it as it was (resume_state relies on it)."""
    folder = Path(folder)
    if hasattr(model, "load_folder"):
        model.load_folder(folder)
        return
    if (folder / "adapter_config.json").is_file():
        from peft import load_peft_weights, set_peft_model_state_dict
        set_peft_model_state_dict(model, load_peft_weights(str(folder)))
        return
    from transformers import AutoModelForCausalLM
    saved = AutoModelForCausalLM.from_pretrained(folder, dtype=next(model.parameters()).dtype)
    model.load_state_dict(saved.state_dict())


class TrainTerms:
    """Means of the training loss and the objective's terms, weighted by the examples of the
    steps that logged each (a step's value is a mean over its examples): over the run
    (`means`; LASAR's `aligned_share` = aligned samples / latent samples) and per evaluation
    interval (`curve`: [step, {name: mean since the previous evaluation}]). Checkpointed
    (`state`), so a resumed run ends with what an uninterrupted one does."""

    def __init__(self, state=None):
        state = state or {}
        self.sums = {k: list(v) for k, v in state.get("sums", {}).items()}  # name: [sum, n]
        self.curve = [list(c) for c in state.get("curve", [])]
        self.window = {}

    def add(self, examples, values):
        for k, v in values.items():
            for acc in (self.sums, self.window):
                s = acc.setdefault(k, [0.0, 0])
                s[0] += float(v) * examples
                s[1] += examples

    @staticmethod
    def _means(sums):
        return {k: s / n for k, (s, n) in sorted(sums.items()) if n}

    def means(self):
        return self._means(self.sums)

    def close_window(self, step):
        """The means since the previous call, appended to `curve`. -> {name: mean}."""
        m, self.window = self._means(self.window), {}
        self.curve.append([step, m])
        return m

    def state(self):
        return {"sums": self.sums, "curve": self.curve}


def examples_seen(tasks, batch_size, seed, per_epoch, steps):
    """The training examples the first s optimizer steps see, for each s of `steps` (the
    batches are a function of (seed, epoch): epoch_batches), so a curve can be drawn against
    examples as well as steps."""
    sizes, out = [], []
    for s in steps:
        while len(sizes) < s:
            sizes += [len(idx) for _, idx in epoch_batches(tasks, batch_size, seed,
                                                           len(sizes) // per_epoch)]
        out.append(int(sum(sizes[:s])))
    return out


class Trainer:
    """SFT with an SFTConfig (methods/lm/config.py). `objective`: a module with the AnswerCE
    contract (forward(batch) -> (loss sum, answer tokens, aux sum, logs)); default
    AnswerCE(model); one whose `skips_parameters` is true may leave some parameters out of a
    step's loss (DDP is then told to look for them; they get no gradient, as in one process).
    `model` is what is saved and resumed; `seed` orders the batches; `stage` names the stage
    for the checkpoint hooks (`after_checkpoint`)."""

    def __init__(self, model, tok, cfg, out_dir, device, *, seed, mixed_precision,
                 stage, objective=None, max_steps=None):
        from accelerate import Accelerator, DistributedDataParallelKwargs
        self.tok, self.cfg, self.out, self.seed = tok, cfg, Path(out_dir), seed
        self.stage, self.max_steps = stage, max_steps
        self.model = model
        self.objective = objective if objective is not None else AnswerCE(model)
        unused = getattr(self.objective, "skips_parameters", False)
        self.acc = Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision,
                               kwargs_handlers=[DistributedDataParallelKwargs(
                                   find_unused_parameters=True)] if unused else None)

    # --- evaluation --------------------------------------------------------------------
    @torch.no_grad()
    def valid_loss(self, valid):
        acc, obj = self.acc, self.acc.unwrap_model(self.ddp)
        obj.eval()
        idx = np.arange(len(valid))[acc.process_index::acc.num_processes]
        tot = torch.zeros(2, dtype=torch.float64, device=acc.device)
        for i in range(0, len(idx), self.cfg.micro_batch):
            b = make_batch(valid, idx[i:i + self.cfg.micro_batch], self.tok.pad_token_id)
            with acc.autocast():
                loss, n, _, _ = obj(b.to(acc.device))
            tot += torch.stack([loss.double(), n.double()])
        tot = acc.reduce(tot, "sum")
        obj.train()
        return float(tot[0] / tot[1])

    # --- checkpoints -------------------------------------------------------------------
    def _checkpoint(self, step, best, bad, curve, improved, terms):
        if self.acc.is_main_process:
            model = self.acc.unwrap_model(self.ddp).model
            if improved:
                replace_dir(save_model(model, self.tok, self.out / "best"), self.out / "best")
            save_checkpoint(model, self.tok, self.out / RESUME_CHECKPOINT, self.opt,
                            self.sched,
                            step=step, best=best, bad=bad, curve=curve, terms=terms.state())
        self.acc.wait_for_everyone()
        after_checkpoint(self.stage, step)

    def _resume(self):
        st = resume(self.model, self.out / RESUME_CHECKPOINT, self.opt, self.sched, self.seed,
                    "SFT")
        if st is None:
            return 0, float("inf"), 0, [], TrainTerms()
        return st["step"], st["best"], st["bad"], st["curve"], TrainTerms(st.get("terms"))

    # --- the loop ----------------------------------------------------------------------
    def _micro_steps(self, tasks, batch):
        t, idx = batch
        # same global batch, micro-batches of similar length: far less padding
        idx = idx[np.argsort([len(tasks[t].suffixes[i]) for i in idx], kind="stable")]
        mine = idx[self.acc.process_index::self.acc.num_processes]
        n_tokens = sum(len(tasks[t].answers[i]) for i in idx)      # global, known everywhere
        mb = self.cfg.micro_batch
        return [(make_batch(tasks[t], mine[i:i + mb], self.tok.pad_token_id), n_tokens, len(idx))
                for i in range(0, len(mine), mb)]

    def _step(self, tasks, batch):
        """One optimizer step. -> (mean answer-token loss, {aux term: mean per example})."""
        acc, total, logs = self.acc, 0.0, {}
        micro = self._micro_steps(tasks, batch)
        for k, (b, n_tokens, n_examples) in enumerate(micro):
            b = b.to(acc.device)
            sync = k == len(micro) - 1
            ctx = acc.no_sync(self.ddp) if not sync and acc.num_processes > 1 else nullcontext()
            with ctx, acc.autocast():
                loss, _, aux, terms = self.ddp(b)
                # DDP averages over processes: scale so the sum is the global token mean (CE)
                # and the global example mean (aux terms)
                scaled = (loss / n_tokens + aux / n_examples) * acc.num_processes
                acc.backward(scaled)
            total += float(loss.detach()) / n_tokens
            for name, v in terms.items():
                logs[name] = logs.get(name, 0.0) + v / n_examples
        acc.clip_grad_norm_(self.ddp.parameters(), self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        names = sorted(logs)
        vals = acc.reduce(torch.tensor([total] + [logs[n] for n in names], device=acc.device,
                                       dtype=torch.float64), "sum")
        return float(vals[0]), {n: float(v) for n, v in zip(names, vals[1:])}

    def fit(self, tasks, valid):
        """Train on `tasks` (list of Encoded), early-stop on `valid` (Encoded seqrec).
        -> fit info (validation curve, best step, steps run, stopped early)."""
        with own_rng():
            return self._fit(tasks, valid)

    def _fit(self, tasks, valid):
        from torch.utils.tensorboard import SummaryWriter
        from transformers import get_cosine_schedule_with_warmup
        cfg, acc = self.cfg, self.acc
        per_epoch = len(epoch_batches(tasks, cfg.batch_size, self.seed, 0))
        total = per_epoch * cfg.epochs
        if self.max_steps is not None:        # a budget in steps (Figure 3's mixed route)
            total = min(total, self.max_steps)
        eval_every = cfg.eval_every or per_epoch
        self.model.train()
        self.opt = torch.optim.AdamW([p for p in self.model.parameters() if p.requires_grad],
                                     lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = get_cosine_schedule_with_warmup(
            self.opt, math.ceil(cfg.warmup_ratio * total), total)
        step, best, bad, curve, train = self._resume()
        self.ddp, self.opt = acc.prepare(self.objective, self.opt)
        writer = SummaryWriter(str(self.out / "tensorboard")) if acc.is_main_process else None
        bar = progress(total=total, initial=step, desc="SFT", unit="step",
                       disable=not acc.is_main_process)
        stopped = False
        while step < total and not stopped:
            epoch, start = divmod(step, per_epoch)
            for batch in epoch_batches(tasks, cfg.batch_size, self.seed, epoch)[start:]:
                loss, terms = self._step(tasks, batch)
                step += 1
                train.add(len(batch[1]), {"loss": loss, **terms})
                if acc.is_main_process:     # a step logged again after a kill: the later line
                    with open(self.out / "train_log.jsonl", "a") as f:
                        f.write(json.dumps({"step": step, "examples": len(batch[1]),
                                            "loss": loss, **terms}) + "\n")
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if writer:
                    writer.add_scalar("train/loss", loss, step)
                    for name, v in terms.items():
                        writer.add_scalar(f"train/{name}", v, step)
                    writer.add_scalar("train/lr", self.sched.get_last_lr()[0], step)
                if step % eval_every == 0 or step % per_epoch == 0 or step == total:
                    v = self.valid_loss(valid)
                    curve.append([step, v])
                    improved = v < best
                    best, bad = (v, 0) if improved else (best, bad + 1)
                    if writer:
                        writer.add_scalar("valid/loss", v, step)
                    window = train.close_window(step)
                    log.info("SFT step %d/%d: valid loss %.4f (best %.4f); train %s", step,
                             total, v, best, ", ".join(f"{k} {x:.4g}" for k, x in window.items()))
                    self._checkpoint(step, best, bad, curve, improved, train)
                    if bad >= cfg.patience:
                        stopped = True
                        break
                if step >= total:
                    break
        bar.close()
        if writer:
            writer.close()
        best_step = min(curve, key=lambda c: c[1])[0] if curve else 0
        seen = examples_seen(tasks, cfg.batch_size, self.seed, per_epoch,
                             [c[0] for c in curve] + [step])
        return {"valid_loss_curve": curve, "best_step": best_step, "steps_run": step,
                "examples_run": seen[-1], "valid_examples_seen": seen[:-1],
                "steps_per_epoch": per_epoch, "stopped_early": stopped,
                "effective_batch": cfg.batch_size, "processes": acc.num_processes,
                "train_curve": train.curve, "train_means": train.means()}
