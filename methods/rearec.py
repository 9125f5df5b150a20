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
      contrastive term switched on after a 2-epoch warm-up.
Defaults are the authors' (hidden 256, inner 300, 2 layers, 2 heads, dropout 0.5, tau 0.07,
input dropout 0.2). The method trains every listed variant and ranks with the one with the
better validation NDCG@10; `studies` reports every variant on the test users.
"""
import logging

from . import register
from .recbole_models import RecBoleSequential

log = logging.getLogger(__name__)
VARIANTS = ("erl", "prl")


def _model_class():
    """The RecBole model class (imported on first use: RecBole is heavy)."""
    from ._rearec_model import ReaRec as model
    return model


@register("rearec")
class ReaRec(RecBoleSequential):
    display_name = "ReaRec"
    cost = 20

    def fit(self, ctx):
        variants = list(self.config["variants"])
        bad = [v for v in variants if v not in VARIANTS]
        if bad or not variants:
            raise ValueError(f"rearec.variants {variants}: choose from {list(VARIANTS)}")
        cls = _model_class()
        self.trained, infos = {}, {}
        for v in variants:
            model, rb_dataset, info = self._train(ctx, cls, {"variant": v}, sub=v,
                                                  desc=f"rearec-{v}")
            self.trained[v], infos[v] = (model, rb_dataset), info
            log.info("rearec-%s: best valid NDCG@10 %.4f at epoch %s", v,
                     info["best_valid_ndcg@10"], info["best_epoch"])
        best = max(variants, key=lambda v: infos[v]["best_valid_ndcg@10"])
        self.chosen = best
        self.fit_info = {"chosen_variant": best, "variants": infos,
                         "selection": "best validation NDCG@10 (PROTOCOL 5)",
                         "parameters": infos[best]["parameters"]}
        self.use_model(ctx, *self.trained[best])
        log.info("rearec: Table 1 uses %s (valid NDCG@10 %s)", best,
                 {v: round(i["best_valid_ndcg@10"], 4) for v, i in infos.items()})

    def studies(self, ctx, topk, out_dir):
        """Every variant's test metrics (the one not chosen is reported, not hidden)."""
        import json

        from benchmark.metrics import summarize, target_ranks
        test, out = ctx.split.test, {}
        for v, (model, rb_dataset) in self.trained.items():
            if v == self.chosen:
                top = topk                       # the main row's ranking
            else:
                self.use_model(ctx, model, rb_dataset)
                top = self.rank(ctx, test)
            out[v] = {"test": summarize(target_ranks(top, test.targets), ctx.config["eval"]["ks"]),
                      "best_valid_ndcg@10": self.fit_info["variants"][v]["best_valid_ndcg@10"],
                      "best_epoch": self.fit_info["variants"][v]["best_epoch"],
                      "epochs_run": self.fit_info["variants"][v]["epochs_run"]}
        self.use_model(ctx, *self.trained[self.chosen])
        res = {"chosen_variant": self.chosen, "variants": out}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "studies.json").write_text(json.dumps(res, indent=1))
        return res
