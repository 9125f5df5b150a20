"""RunContext: everything a method may use, passed explicitly (../shared/DESIGN.md, "The
seams")."""
from dataclasses import dataclass, field
from pathlib import Path

from .artifact import Artifact


@dataclass
class RunContext:
    dataset: object            # recdata.Dataset
    split: object              # recdata.Split
    profile: str
    config: object             # settings.Settings: the shared configuration, typed
    method_config: object      # the method's own configuration dataclass
    results_dir: Path          # results/<dataset>/<profile> (or its _scaling/<label>/)
    device: str                # settings.device
    seed: int                  # settings.seed: model init, data order, training samples
    show_progress: bool = True
    config_of: object = None   # name -> typed config of another method (a method's
                               # `depends_on`; LASAR reads MiniOneRec's for its Stage 1)
    cache_dir: Path = None     # results/<dataset>/_cache (default: beside results_dir)
    _sids: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.cache_dir is None:
            self.cache_dir = Path(self.results_dir).parent / "_cache"

    @property
    def work_dir(self):
        """results/<dataset>/<profile>/_work: this profile's artifacts (trained models)."""
        return Path(self.results_dir) / "_work"

    @property
    def topk(self):
        """Items per ranked list: the profile's topk (50), or the catalog size if smaller."""
        return min(self.config.topk, self.dataset.n_items)

    def artifact(self, kind, inputs, shared=False, **kw):
        """An artifact of this run (protocol/artifact.py): under _work/, or with
        shared=True under the dataset's _cache/ (what every profile of a dataset reuses:
        SID tables, embeddings, teacher CoTs, segments, converted backbones)."""
        return Artifact(self.cache_dir if shared else self.work_dir, kind, inputs, **kw)

    @property
    def eval_seed(self):
        """The seed of the samples of evaluated users (the studies' test users): the same for
        every seed of a several-seed run (settings.eval_seed), else the seed."""
        return self.config.users_seed

    def data_inputs(self):
        """The data a model is trained on, as artifact-key input: the files' fingerprint, the
        user sample (and its seed when it is not the seed), the history window and the seed."""
        extra = {"eval_seed": self.eval_seed} if self.eval_seed != self.seed else {}
        return {"data": self.dataset.fingerprint, "users": len(self.split.test),
                "history_len": self.config.history_len, "seed": self.seed, **extra}

    def sids(self):
        """The dataset's semantic-ID table (built once, cached; PROTOCOL section 2)."""
        if self._sids is None:
            from .sids import build_or_load
            self._sids = build_or_load(self.dataset, self.config.sids, self.cache_dir)
        return self._sids
