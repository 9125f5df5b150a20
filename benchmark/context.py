"""RunContext: everything a method may use, passed explicitly (DESIGN.md, "The seams")."""
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RunContext:
    dataset: object            # recdata.Dataset
    split: object              # recdata.Split
    profile: str
    config: dict               # resolved shared configuration
    method_config: dict        # resolved configuration of the method being run
    results_dir: Path          # results/<dataset>/<profile> (or its _scaling/<label>/)
    work_dir: Path             # checkpoints and scratch of this method run
    device: str = "cpu"
    seed: int = 42
    show_progress: bool = True
    config_of: object = None   # name -> resolved config of another method (a method's
                               # `depends_on`; LASAR reads MiniOneRec's for its Stage 1)
    cache_dir: Path = None     # results/<dataset>/_cache (default: beside results_dir)
    _sids: object = field(default=None, repr=False)

    def __post_init__(self):
        if self.cache_dir is None:
            self.cache_dir = Path(self.results_dir).parent / "_cache"

    @property
    def topk(self):
        """Items per ranked list: the profile's topk (50), or the catalog size if smaller."""
        return min(self.config["topk"], self.dataset.n_items)

    def sids(self):
        """The dataset's semantic-ID table (built once, cached on disk; PROTOCOL section 2)."""
        if self._sids is None:
            from .sids import build_or_load
            self._sids = build_or_load(self.dataset, self.config["sids"],
                                       self.cache_dir)
        return self._sids
