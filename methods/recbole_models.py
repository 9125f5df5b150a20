"""SASRec and GRU4Rec through RecBole 1.2.1, trained and evaluated on exactly our split.

RecBole gets pre-split "benchmark" atomic files (one row per example: user, the last 20 history
items, target), so its own splitter and augmentation never run (PROTOCOL section 5). Training is
RecBole's trainer (CE over all items, early stopping on validation NDCG@10); the top-50 lists are
scored over the full catalog with the model's own full_sort_predict.
"""
import contextlib
import logging
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from protocol.progress import progress as progress_bar
from protocol.schema import NonNegFloat, PosFloat, PosInt, Prob, require, to_dict

from ._recbole_compat import import_recbole, load_checkpoint
from .base import FitRecord, Method, Ranking

log = logging.getLogger(__name__)
TRAINING_LENGTH = ("epochs", "stopping_step")   # continuable: raising them continues training


@dataclass(frozen=True)
class RecBoleTraining:
    """The training keys every RecBole model's YAML has (RecBole's own names)."""
    learning_rate: PosFloat
    train_batch_size: PosInt
    eval_batch_size: PosInt
    epochs: PosInt
    stopping_step: PosInt          # epochs without a validation NDCG@10 gain before stopping
    weight_decay: NonNegFloat


@dataclass(frozen=True)
class SASRecConfig(RecBoleTraining):
    """methods/configs/sasrec.yaml: RecBole's SASRec defaults."""
    hidden_size: PosInt
    inner_size: PosInt
    n_layers: PosInt
    n_heads: PosInt
    hidden_dropout_prob: Prob
    attn_dropout_prob: Prob
    hidden_act: str
    layer_norm_eps: PosFloat
    initializer_range: PosFloat

    def __post_init__(self):
        require(self.hidden_size % self.n_heads == 0, "hidden_size", self.hidden_size,
                f"a multiple of n_heads ({self.n_heads})")


@dataclass(frozen=True)
class GRU4RecConfig(RecBoleTraining):
    """methods/configs/gru4rec.yaml: RecBole's GRU4Rec defaults."""
    embedding_size: PosInt
    hidden_size: PosInt
    num_layers: PosInt
    dropout_prob: Prob


class RecBoleRun(NamedTuple):
    """What RecBole needs for one run: its config, dataset, loaders, model and trainer class."""
    config: object
    dataset: object
    train_data: object
    valid_data: object
    model: object
    trainer_class: object


@dataclass
class RecBoleFit(FitRecord):
    """A trained RecBole model and the maps between our item indices and RecBole's."""
    model: object
    to_internal: np.ndarray        # our item index -> RecBole's
    from_internal: np.ndarray      # RecBole's -> ours (-1 for its padding item)

    @classmethod
    def of(cls, ctx, model, rb_dataset, info):
        token2id = rb_dataset.field2token_id["item_id"]
        to_internal = np.array([token2id[i] for i in ctx.dataset.item_ids])
        from_internal = np.full(rb_dataset.item_num, -1)
        from_internal[to_internal] = np.arange(ctx.dataset.n_items)
        return cls(model, to_internal, from_internal, info=info)


def recbole_data(ctx):
    """Our split as RecBole's pre-split atomic files: an artifact shared by every RecBole model
    of a run. -> the data_path folder."""
    art = ctx.artifact("recbole-data", ctx.data_inputs())

    def build(folder):
        write_atomic_files(ctx.dataset, ctx.split, folder / ctx.dataset.name)
        return {}
    return art.get(build, lambda path, info: path)


def write_atomic_files(dataset, split, folder):
    """<name>.{train,valid,test}.inter and <name>.item (the whole catalog, so items that
    appear in no sequence of a subsample are still ranked)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = folder.name
    ids = np.asarray(dataset.item_ids, dtype=object)
    users = np.asarray(dataset.user_ids, dtype=object)
    for part in ("train", "valid", "test"):
        ex = getattr(split, part)
        with open(folder / f"{name}.{part}.inter", "w") as f:
            f.write("user_id:token\titem_id_list:token_seq\titem_id:token\n")
            for u, h, n, t in zip(ex.users, ex.history, ex.lengths, ex.targets):
                f.write(f"{users[u]}\t{' '.join(ids[h[:n]])}\t{ids[t]}\n")
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\n" + "".join(f"{i}\n" for i in ids))


@contextlib.contextmanager
def working_dir(path):
    """RecBole writes log_tensorboard/ relative to the working directory: keep it in the run."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _rng_state(train_data):
    import random

    import torch
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(), "loader": train_data.generator.get_state()}


def _set_rng_state(state, train_data):
    import random

    import torch
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    train_data.generator.set_state(state["loader"])


def save_last(trainer, train_data, path, epoch, curve):
    """Everything needed to continue after `epoch` exactly as if never stopped (atomic)."""
    import torch
    state = {"config": trainer.config, "epoch": epoch, "cur_step": trainer.cur_step,
             "best_valid_score": trainer.best_valid_score,
             "best_valid_result": trainer.best_valid_result,
             "state_dict": trainer.model.state_dict(),
             "other_parameter": trainer.model.other_parameter(),
             "optimizer": trainer.optimizer.state_dict(), "curve": list(curve),
             "rng": _rng_state(train_data)}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp, pickle_protocol=4)
    os.replace(tmp, path)


def resume(trainer, train_data, path):
    """Load a last-epoch checkpoint into the trainer; returns the validation curve so far."""
    ck = load_checkpoint(path)
    trainer.model.load_state_dict(ck["state_dict"])
    trainer.model.load_other_parameter(ck.get("other_parameter"))
    trainer.optimizer.load_state_dict(ck["optimizer"])
    trainer.start_epoch = ck["epoch"] + 1
    trainer.cur_step = ck["cur_step"]
    trainer.best_valid_score = ck["best_valid_score"]
    trainer.best_valid_result = ck.get("best_valid_result")
    if ck.get("rng"):
        _set_rng_state(ck["rng"], train_data)
    return list(ck.get("curve", []))


class RecBoleSequential(Method):
    """Shared driver: subclasses only name the RecBole model and its config class."""
    recbole_model = None

    def recbole_config(self, ctx, data_root, run_dir, settings):
        """RecBole's config dict: the run's own `settings` and ours (split, metrics, paths)."""
        cfg = dict(settings)
        cfg.update({
            "data_path": str(data_root),
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
            "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
            "alias_of_item_id": ["item_id_list"],
            "MAX_ITEM_LIST_LENGTH": ctx.config.history_len,
            "loss_type": "CE", "train_neg_sample_args": None,
            "eval_args": {"mode": "full", "order": "TO", "group_by": "user",
                          "split": {"RS": [0.8, 0.1, 0.1]}},  # unused with benchmark files
            "metrics": ["Hit", "NDCG"], "topk": list(ctx.config.eval.ks),
            "valid_metric": "NDCG@10", "eval_step": 1,
            "seed": ctx.seed, "reproducibility": True,
            "use_gpu": ctx.device == "cuda", "gpu_id": "0" if ctx.device == "cuda" else "",
            "checkpoint_dir": str(run_dir / "checkpoints"),
            "show_progress": ctx.show_progress, "worker": 0, "log_wandb": False,
            "state": "INFO",
        })
        return cfg

    def training_artifact(self, ctx, name, settings):
        """The RecBole run as an artifact: keyed by the data and every setting the run is
        given except the training length, which is continuable (a raised epoch cap continues
        the run)."""
        return ctx.artifact(f"recbole-{name}", {
            **ctx.data_inputs(), "ks": list(ctx.config.eval.ks), "device": ctx.device,
            "config": {k: v for k, v in settings.items() if k not in TRAINING_LENGTH}},
            continuable={k: settings[k] for k in TRAINING_LENGTH}, resumable=True)

    def _setup(self, ctx, run_dir, model_class, settings):
        """RecBole's config, dataset, loaders, model and trainer for a run in `run_dir`.
        -> RecBoleRun."""
        Config, create_dataset, data_preparation, get_model, get_trainer = import_recbole()
        from recbole.utils import init_seed
        with working_dir(run_dir):
            cfg = self.recbole_config(ctx, recbole_data(ctx), run_dir, settings)
            config = Config(model=model_class or self.recbole_model, dataset=ctx.dataset.name,
                            config_dict=cfg)
            init_seed(config["seed"], config["reproducibility"])
            rb_dataset = create_dataset(config)
            train_data, valid_data, _ = data_preparation(config, rb_dataset)
            init_seed(config["seed"], config["reproducibility"])
            cls = model_class or get_model(config["model"])
            model = cls(config, train_data._dataset).to(config["device"])
        return RecBoleRun(config, rb_dataset, train_data, valid_data, model,
                          get_trainer(config["MODEL_TYPE"], config["model"]))

    def _train(self, ctx, settings, model_class=None, name=None, desc=None):
        """RecBole's own trainer on our files, as an artifact. `settings`: the run's own
        configuration keys; `model_class`: a custom RecBole model (ReaRec) instead of
        `recbole_model`. -> RecBoleFit of the best epoch's weights."""
        art = self.training_artifact(ctx, name or self.name, settings)
        built = {}

        def build(run_dir):
            run = built["run"] = self._setup(ctx, run_dir, model_class, settings)
            with working_dir(run_dir):
                return self._fit(ctx, run_dir, run, desc)

        def load(path, info):
            run = built.get("run") or self._setup(ctx, path, model_class, settings)
            ckpt = load_checkpoint(path / "checkpoints" / "best.pth")   # the best epoch
            run.model.load_state_dict(ckpt["state_dict"])
            run.model.load_other_parameter(ckpt.get("other_parameter"))
            return RecBoleFit.of(ctx, run.model.eval(), run.dataset, info)
        return art.get(build, load)

    def _fit(self, ctx, run_dir, run, desc=None):
        """Train a RecBoleRun (resuming from checkpoints/last.pth). -> info."""
        config, model, train_data = run.config, run.model, run.train_data
        trainer = run.trainer_class(config, model)
        if hasattr(model, "epoch"):          # models whose loss changes with the epoch
            train_epoch = trainer._train_epoch

            def _train_epoch(data, epoch_idx, *a, **k):
                model.epoch = epoch_idx
                return train_epoch(data, epoch_idx, *a, **k)
            trainer._train_epoch = _train_epoch
        ckpt_dir = run_dir / "checkpoints"
        trainer.saved_model_file = str(ckpt_dir / "best.pth")
        last = ckpt_dir / "last.pth"
        curve = resume(trainer, train_data, last) if last.is_file() else []
        if curve:
            log.info("%s: resuming after epoch %d from %s", self.name, len(curve) - 1, last)
        with progress_bar(total=config["epochs"], initial=len(curve), unit="epoch",
                          desc=f"{desc or self.name} epochs (ETA if no early stop)") as bar:
            def on_epoch(epoch, valid_score):
                curve.append(round(float(valid_score), 6))   # validation NDCG@10
                save_last(trainer, train_data, last, epoch, curve)
                bar.update(1)
                bar.set_postfix(valid_ndcg10=f"{valid_score:.4f}")
            # a finished run (cap reached or early-stopped) is not refit: RecBole's fit
            # would overwrite best.pth with the last weights when start_epoch >= epochs
            if (trainer.start_epoch < config["epochs"] and
                    trainer.cur_step <= config["stopping_step"]):
                best_score, best_valid = trainer.fit(train_data, run.valid_data, saved=True,
                                                     show_progress=ctx.show_progress,
                                                     callback_fn=on_epoch)
            else:
                best_score, best_valid = trainer.best_valid_score, trainer.best_valid_result
        ckpt = load_checkpoint(trainer.saved_model_file)
        return {"best_valid_ndcg@10": float(best_score), "best_epoch": int(ckpt.get("epoch", -1)),
                "epochs_run": len(curve), "stopped_early": len(curve) < config["epochs"],
                "valid_ndcg10_curve": curve,
                "best_valid": {k: float(v) for k, v in (best_valid or {}).items()},
                "parameters": int(sum(p.numel() for p in model.parameters()))}

    def fit(self, ctx):
        fitted = self._train(ctx, to_dict(self.config))
        log.info("%s: best valid NDCG@10 %.4f at epoch %s", self.name,
                 fitted.info["best_valid_ndcg@10"], fitted.info["best_epoch"])
        return fitted

    def rank(self, ctx, fitted, examples, progress=None):
        """Full-catalog scores -> top-k (n, k) of our item indices, best first."""
        import torch
        from recbole.data.interaction import Interaction
        model = fitted.model
        device = next(model.parameters()).device
        k, bs = ctx.topk, self.config.eval_batch_size
        out = np.empty((len(examples), k), dtype=np.int64)
        hist = np.where(examples.history >= 0, fitted.to_internal[examples.history.clip(0)], 0)
        with torch.no_grad():
            for start in range(0, len(examples), bs):
                sl = slice(start, start + bs)
                inter = Interaction({
                    model.ITEM_SEQ: torch.as_tensor(hist[sl]),
                    model.ITEM_SEQ_LEN: torch.as_tensor(examples.lengths[sl]),
                }).to(device)
                scores = model.full_sort_predict(inter).view(len(hist[sl]), -1)
                scores[:, 0] = -torch.inf                      # RecBole's [PAD] item
                top = torch.topk(scores, k, dim=1).indices.cpu().numpy()  # (B, k)
                out[sl] = fitted.from_internal[top]
                if progress is not None:
                    progress.update(len(hist[sl]))
        return Ranking(out)


class SASRec(RecBoleSequential):
    config_class = SASRecConfig
    recbole_model = "SASRec"


class GRU4Rec(RecBoleSequential):
    config_class = GRU4RecConfig
    recbole_model = "GRU4Rec"
