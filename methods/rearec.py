"""ReaRec (Tang et al., 2025: "Think before recommend"), both published variants, as a RecBole
custom model: RecBole's data pipeline, trainer, early stopping and full-ranking evaluation, the
same pre-split files and history window as SASRec (PROTOCOL section 5).

The model is a SASRec encoder (RecBole's TransformerEncoder layers). After encoding the
history, its last hidden state h_0, plus a reasoning-step position embedding, is fed back as
one new input token; the token attends to the history and to earlier reasoning tokens through
a per-layer key/value cache. K steps give K + 1 states h_0..h_K (../shared/REFERENCES.md).

  ERL (ensemble reasoning):     score = mean_k h_k . E;
      L = CE(mean_k h_k E^T / tau) - lambda * mean_{i != j} KL(p_j || p_i), p_k = softmax(h_k E^T / tau),
      with p_i detached (the reference implementation's direction), lambda = 0.05.
  PRL (progressive reasoning):  score = h_K . E;
      L = CE(h_K E^T / tau) + w_pl * mean_{k<K} CE(h_k E^T / (tau * alpha^(K-k)))
          + w_cl * InfoNCE(noised h_k, clean h_k; in-batch negatives, k = 1..K),
      alpha = 5 (earlier steps softer), noise N(0, 0.01^2) added to each reasoning input, the
      contrastive term switched on after a 2-epoch warm-up. The progressive term is a MEAN over
      the earlier steps as in the authors' code (TangJiakai/ReaRec src/models/PRL.py: one
      default-mean CrossEntropyLoss over the B*K rows); the noised view is a second run of the
      whole batch with its own dropout masks (src/utils/layers.py, ReaRecAutoRegressiveWrapper).
Defaults are the authors' (hidden 256, inner 300, 2 layers, 2 heads, dropout 0.5, tau 0.07,
input dropout 0.2). The method trains every listed variant and ranks with the one with the
better validation NDCG@10; `studies` reports every variant on the test users.
"""
import logging
from dataclasses import dataclass
from typing import Literal

from protocol.io import atomic_write_json
from protocol.metrics import summarize, target_ranks
from protocol.schema import NonNegFloat, NonNegInt, PosFloat, PosInt, Prob, require, to_dict

from .base import FitRecord
from .recbole_models import RecBoleSequential, SASRecConfig

log = logging.getLogger(__name__)
VARIANTS = ("erl", "prl")


@dataclass(frozen=True)
class ReaRecConfig(SASRecConfig):
    """methods/configs/rearec.yaml: the authors' defaults; the encoder's keys are SASRec's."""
    variants: list[Literal["erl", "prl"]]
    reason_steps: PosInt
    input_dropout_prob: Prob
    temperature: PosFloat
    erl_kl_weight: NonNegFloat
    prl_pl_weight: NonNegFloat
    prl_temp_scale: PosFloat
    prl_noise: NonNegFloat
    prl_cl_weight: NonNegFloat
    prl_warmup_epochs: NonNegInt

    def __post_init__(self):
        super().__post_init__()
        require(self.variants, "variants", self.variants, "a list naming erl, prl or both")


@dataclass
class ReaRecFit(FitRecord):
    """Every trained variant (RecBoleFit each) and the one Table 1 uses."""
    variants: dict
    chosen: str


def _model_class():
    """The RecBole model class (imported on first use: RecBole is heavy)."""
    from ._rearec_model import ReaRec as model
    return model


class ReaRec(RecBoleSequential):
    config_class = ReaRecConfig

    def fit(self, ctx):
        variants = list(self.config.variants)
        cls = _model_class()
        trained = {}
        for v in variants:
            trained[v] = self._train(ctx, self.run_settings(v), cls, name=f"rearec-{v}",
                                     desc=f"rearec-{v}")
            log.info("rearec-%s: best valid NDCG@10 %.4f at epoch %s", v,
                     trained[v].info["best_valid_ndcg@10"], trained[v].info["best_epoch"])
        best = max(variants, key=lambda v: trained[v].info["best_valid_ndcg@10"])
        infos = {v: f.info for v, f in trained.items()}
        log.info("rearec: Table 1 uses %s (valid NDCG@10 %s)", best,
                 {v: round(i["best_valid_ndcg@10"], 4) for v, i in infos.items()})
        return ReaRecFit(trained, best, info={
            "chosen_variant": best, "variants": infos,
            "selection": "best validation NDCG@10 (PROTOCOL 5)",
            "parameters": infos[best]["parameters"]})

    def run_settings(self, variant):
        """What one variant's run is given: the configuration, with `variants` (which runs to
        make) replaced by the run's own `variant`."""
        return {**{k: v for k, v in to_dict(self.config).items() if k != "variants"},
                "variant": variant}

    def rank(self, ctx, fitted, examples, progress=None):
        """With the chosen variant (better validation NDCG@10)."""
        return super().rank(ctx, fitted.variants[fitted.chosen], examples, progress)

    def studies(self, ctx, fitted, ranking, out_dir):
        """Every variant's test metrics (the one not chosen is reported, not hidden)."""
        test, out = ctx.split.test, {}
        for v, variant in fitted.variants.items():
            top = (ranking.items if v == fitted.chosen     # the main row's ranking is reused
                   else super().rank(ctx, variant, test).items)
            out[v] = {"test": summarize(target_ranks(top, test.targets), ctx.config.eval.ks),
                      "best_valid_ndcg@10": variant.info["best_valid_ndcg@10"],
                      "best_epoch": variant.info["best_epoch"],
                      "epochs_run": variant.info["epochs_run"]}
        res = {"chosen_variant": fitted.chosen, "variants": out}
        atomic_write_json(out_dir / "studies.json", res, indent=1)
        return res
