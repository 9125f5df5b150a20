"""The method contract, stated as RecBole's AbstractRecommender states its own. It refines
../shared/DESIGN.md "The seams": `fit` returns a record that `rank` and `studies` receive.

The runner calls, in this order, and nothing else (the plan calls `method.check(settings,
processes, n_items)` before any work):

    fitted  = method.fit(ctx)                        -> a FitRecord (what was learned)
    ranking = method.rank(ctx, fitted, examples, progress)
                                                     -> Ranking: items (n, k) int64
    extra   = method.studies(ctx, fitted, ranking, out_dir)   (optional) -> dict

`ctx` is a protocol.context.RunContext; `examples` a recdata.Examples of n users;
k = ctx.topk. `fit` trains on ctx.split.train and early-stops on ctx.split.valid; everything it
learned goes into the record it returns (nothing is kept on the method object), so studies and
benchmarks get the same record explicitly. `self.config` is the method's configuration, an
instance of its `config_class` (a dataclass; methods/configs/<name>.yaml holds the defaults).
"""
from dataclasses import dataclass, field

import numpy as np

from protocol.schema import to_dict


@dataclass
class FitRecord:
    """What `fit` learned. Subclasses add the trained model(s); `info` goes to manifest.json as
    `fit_info` (curves, timings, parameter counts)."""
    info: dict = field(default_factory=dict, kw_only=True)


@dataclass
class Ranking:
    """The result of `rank`: items (n, k) int64 item indices per example, best first; `fields`
    per-example extras written to predictions.jsonl, {name: (n,) array} (LASAR: the number of
    latent steps each user got)."""
    items: np.ndarray
    fields: dict = field(default_factory=dict)


class Method:
    """A recommender under the shared protocol. Its registry entry (methods/__init__.py) gives
    its name, display name, kind, dependencies and cost; `spec` is that entry."""
    config_class = None          # the dataclass of this method's configuration section

    def __init__(self, config, spec):
        self.config, self.spec = config, spec
        self.name = spec.name

    def check(self, settings, processes, n_items):
        """Before any work: raise BenchmarkError (one line naming the key to change; a value
        out of range: schema.out_of_range with the dotted key) when this method cannot run
        with these shared settings in `processes` processes on a catalog of `n_items`."""

    def dependents_read(self):
        """What a method that depends on this one (registry `depends_on`) reads of its
        configuration: part of the dependents' results key. Default: all of it."""
        return to_dict(self.config)

    def code_versions(self):
        """Versions of code whose output the configuration does not name (a teacher's template,
        a segmentation rule): part of this method's results key, so a bumped version makes
        its results stale. Default: none (the key then holds no entry for it)."""
        return {}

    def fit(self, ctx):
        """Train. -> FitRecord."""
        raise NotImplementedError

    def rank(self, ctx, fitted, examples, progress=None):
        """Top-k item indices of every example, best first. -> Ranking ((n, k) items).
        `progress.update(m)` after every m examples when given."""
        raise NotImplementedError

    def precision(self, ctx):
        """The context `rank` and `studies` run in (the runner and the benchmarks enter it).
        Default: none; the generative methods autocast to bf16 on a GPU when the profile asks
        (methods/lm/backbone.py autocast)."""
        from contextlib import nullcontext
        return nullcontext()

    def studies(self, ctx, fitted, ranking, out_dir):
        """Optional extra evaluations after the main row (LASAR's ablations and sweeps). Files
        written to out_dir land in the method's results folder, the returned dict in its
        manifest."""
        return {}
