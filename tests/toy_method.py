"""A throwaway method for tests/test_end_to_end.py's "ninth method" test: most popular items
of the training targets, a Method subclass with an empty configuration and nothing else."""
from dataclasses import dataclass

import numpy as np

from methods.base import FitRecord, Method, Ranking


@dataclass(frozen=True)
class MostPopConfig:
    pass


@dataclass
class MostPopFit(FitRecord):
    order: np.ndarray = None             # item indices, most frequent training target first


class MostPop(Method):
    config_class = MostPopConfig

    def fit(self, ctx):
        counts = np.bincount(ctx.split.train.targets, minlength=ctx.dataset.n_items)
        return MostPopFit(np.argsort(-counts, kind="stable"), info={"items": len(counts)})

    def rank(self, ctx, fitted, examples, progress=None):
        if progress is not None:
            progress.update(len(examples))
        return Ranking(np.tile(fitted.order[:ctx.topk], (len(examples), 1)))
