"""The plan of a run: every configuration value, method name, backbone and input file checked,
the dataset loaded and split, before any training. What each method's results depend on (the
key in its manifest) is derived here from named inputs."""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import methods as registry
from recdata import load_dataset, make_split
from recdata.split import sample_users

from protocol import manifest as mf
from protocol.artifact import key_of
from protocol.config import Config
from protocol.dist import world_size
from protocol.context import RunContext
from protocol.errors import BenchmarkError
from protocol.schema import ConfigKeyError, out_of_range, to_dict
from protocol.sids import embedder_path

REPO = Path(__file__).resolve().parents[1]


def results_root(out=None):
    """--out, else results/ in the repository."""
    return Path(out or REPO / "results").resolve()


def profile_folder(cfg):
    """The results folder's name under results/<dataset>/: the profile, and `@<backbone>`
    when --backbone (or --set lm.backbone) replaces the profile's own backbone (paper@Qwen3-0.6B,
    cpu@smollm2), so results of two backbones never share a folder. Two backbone folders of
    the same name are told apart by backbone.json there (`claim_folder`)."""
    lm = cfg.settings.lm
    if lm.backbone == cfg.profile_value("lm.backbone"):
        return cfg.profile
    tag = lm.backbone if lm.backbone in ("random", "smollm2") else Path(lm.backbone_id()).name
    return f"{cfg.profile}@{tag}"


def claim_folder(plan):
    """Record the backbone of a results folder (backbone.json) on its first run; a later run
    with another backbone of the same folder name stops with one line. Call under the run
    lock."""
    if plan.settings.lm.backbone == "random":
        return
    path = plan.profile_root / "backbone.json"
    mine = plan.settings.lm.backbone_id()
    held = json.loads(path.read_text())["backbone"] if path.is_file() else None
    if held is not None and held != mine:
        raise BenchmarkError(f"{plan.profile_root} holds results of the backbone {held}, not "
                             f"{mine}; give this run another --out (or rename the folder)")
    if held is None:
        from protocol.io import atomic_write_json
        plan.profile_root.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"backbone": mine})


@dataclass
class RunRequest:
    """What a command line asks for; plain data, so a parallel run hands it to its children."""
    dataset: str
    profile: str
    methods: list = None
    data_dir: str = None
    out: str = None
    overrides: list = field(default_factory=list)
    scaling: bool = False          # Table 5: the profile's larger backbone (scaling.lm)
    seeds: list = None             # --seeds: every method once per seed, in seed-<s>/ folders
    seed: int = None               # the one seed of this request's plan (one of `seeds`)
    sensitivity: str = None        # a sensitivity variant's label (settings `sensitivity`)

    def for_seed(self, seed, scaling=False, sensitivity=None):
        """This request for one of its seeds (a plan of a several-seed run), or that seed's
        Table-5 or sensitivity variant."""
        from dataclasses import replace
        return replace(self, seed=seed, scaling=scaling, sensitivity=sensitivity)

    def seed_overrides(self):
        """--set pairs of one seed of a several-seed run: its seed, and the first seed as the
        evaluated users' seed, so every seed is scored on the same users."""
        if self.seed is None:
            return []
        return [f"seed={self.seed}", f"eval_seed={self.seeds[0]}"]

    def to_json(self):
        return json.dumps({**asdict(self), "data_dir": self.data_dir and str(self.data_dir),
                           "out": self.out and str(self.out)})

    @classmethod
    def from_json(cls, text):
        return cls(**json.loads(text))


def scaling_overrides(sc):
    """--set pairs that turn a profile into its Table-5 variant: the larger backbone's lm keys;
    LASAR's and Explicit CoT's studies off (Table 5 reads the main rows only)."""
    return ([f"lm.{k}={json.dumps(v)}" for k, v in sc.lm.items()]
            + ["lasar.studies.enabled=false", "cot_gream.studies.enabled=false"])


class Plan:
    """A validated run: settings, method list and their typed configurations, dataset and split.
    Built before any training; every problem is one line (BenchmarkError)."""

    def __init__(self, request, methods=None):
        """The plan of `request` (a RunRequest): its methods, or `methods` when given (a
        child process's one method, Table 5's methods on the larger backbone)."""
        self.request = request
        profile, scaling = request.profile, request.scaling
        methods = list(methods or request.methods or []) or None
        defaults = registry.all_default_configs(), registry.default_files()
        over = request.overrides + request.seed_overrides()
        self.cfg = Config(profile, over, *defaults)
        if scaling:          # Table 5: the scaling methods again on the profile's larger backbone
            sc = self.cfg.settings.scaling
            self.cfg = Config(profile, over + scaling_overrides(sc), *defaults)
            methods = [m for m in sc.methods if not methods or m in methods]
        if request.sensitivity:      # a sensitivity row: its methods under the variant's pairs
            sv = self.cfg.settings.sensitivity
            if request.sensitivity not in sv.variants:
                raise BenchmarkError(f"sensitivity variant '{request.sensitivity}' is not in "
                                     f"sensitivity.variants ({', '.join(sv.variants)})")
            self.cfg = Config(profile, over + sv.variants[request.sensitivity], *defaults)
            methods = [m for m in sv.methods if not methods or m in methods]
        self.settings = s = self.cfg.settings
        self.methods = list(methods) if methods else list(s.enabled)
        if not self.methods:
            raise BenchmarkError(f"profile '{profile}' enables no method; pass --methods a,b")
        self.specs = {m: registry.spec(m) for m in self.methods}    # unknown names fail here
        needed = set(self.methods) | {d for sp in self.specs.values() for d in sp.depends_on}
        self.method_cfgs = {m: self._typed(m) for m in sorted(needed)}
        self.dataset = load_dataset(request.dataset, request.data_dir)
        self._check_against_data(scaling)
        users = sample_users(self.dataset.n_users, s.max_users, s.users_seed)
        self.split = make_split(self.dataset, s.history_len, users)
        self._check_processes()
        self.profile = profile
        self.git_commit = mf.git_commit()          # the code that runs is the code read now
        # results/<ds>/<profile>: the run's folder (its lock, backbone.json, and with several
        # seeds the seed-pooled tables); profile_dir: this plan's tables and methods
        self.profile_root = (results_root(request.out) / request.dataset
                             / profile_folder(self.cfg))
        self.profile_dir = (self.profile_root / f"seed-{request.seed}"
                            if request.seed is not None else self.profile_root)
        self.results_dir = (self.profile_dir / "_scaling" / s.scaling.label if scaling else
                            self.profile_dir / "_sensitivity" / request.sensitivity
                            if request.sensitivity else self.profile_dir)

    @property
    def tag(self):
        """The plan's name in a queue of several: '' for a one-seed run's main plan, else its
        seed folder and/or Table 5's label."""
        parts = (([f"seed-{self.request.seed}"] if self.request.seed is not None else [])
                 + ([self.settings.scaling.label] if self.request.scaling else [])
                 + ([self.request.sensitivity] if self.request.sensitivity else []))
        return "/".join(parts)

    def _check_against_data(self, scaling):
        """The files settings name (backbone, embedders, teachers: each method's `check`) and
        what only the data can bound: topk and each method's own limits (a GRPO group is a
        beam of distinct items) at most the catalog. The default topk (50) ranks a smaller
        catalog whole (RunContext.topk); a topk written in a profile or --set must fit. A bad
        value: one line naming its key and the file or --set it came from."""
        n, s = self.dataset.n_items, self.settings
        generative = any(sp.kind == "generative" for sp in self.specs.values())
        if generative and s.pretrained_backbone and s.lm.backbone == "random":
            raise BenchmarkError(f"profile '{self.request.profile}' needs a pretrained backbone: "
                                 "pass --backbone PATH to a local Hugging Face causal-LM folder "
                                 "(the paper's: Qwen3-0.6B) or --backbone smollm2")
        if s.device == "cuda":
            import torch
            if not torch.cuda.is_available():
                raise BenchmarkError(f"profile '{self.request.profile}' runs on a CUDA GPU and "
                                     "none is visible; run it on a GPU machine, or on this "
                                     "one with --set device=cpu (slow), or use --profile cpu")
        try:
            if generative:
                self._check_backbones(scaling)
                if self.dataset.published_sids is None:
                    embedder_path(s.sids.embedder)
            if s.topk > n and self.cfg.explicit("topk"):
                raise out_of_range("topk", s.topk, f"an integer in [1, {n}] (the catalog of "
                                   f"'{self.dataset.name}' has {n} items)")
            for m in self.methods:
                self.method(m).check(s, world_size(), n)
        except ConfigKeyError as e:
            raise self.cfg.located(e) from None

    def _check_processes(self):
        """A run of several processes (`accelerate launch`) shares the test users out among
        them by whole batches: more processes than test users is a mistake (one line)."""
        n, users = world_size(), len(self.split.test)
        if n > users:
            raise BenchmarkError(f"{n} processes (accelerate launch) for {users} test users "
                                 f"of '{self.dataset.name}': launch at most {users} processes")

    def _typed(self, name):
        """The method's resolved configuration as its config dataclass (checked)."""
        return self.cfg.typed(name, registry.get(name).config_class)

    def _check_backbones(self, scaling):
        from methods.lm.backbone import check_backbone
        s = self.settings
        check_backbone(s.lm)
        sc = s.scaling
        if sc.enabled and not scaling and set(sc.methods) & set(self.methods):
            if not sc.lm:
                raise BenchmarkError(f"profile '{self.request.profile}': scaling.enabled is "
                                     "true but scaling.lm names no larger backbone (e.g. --set "
                                     "'scaling.lm={hidden_size: 256}')")
            check_backbone(self.cfg.build(type(s.lm), {**to_dict(s.lm), **sc.lm}, "scaling.lm"),
                           "scaling.lm.backbone")

    def method(self, name):
        """A fresh instance of method `name` with its configuration."""
        spec = self.specs.get(name) or registry.spec(name)
        return spec.load()(self.method_cfgs[name], spec)

    def context(self, method):
        """The RunContext a method is fitted and ranked with."""
        s = self.settings
        return RunContext(dataset=self.dataset, split=self.split, profile=self.profile,
                          config=s, method_config=self.method_cfgs[method],
                          results_dir=self.results_dir, device=s.device, seed=s.seed,
                          config_of=self.method_cfgs.__getitem__,
                          cache_dir=self.profile_root.parent / "_cache")

    def inputs(self, method):
        """What a method's results are produced from, by name: its configuration, those of the
        methods it depends on, the data a model is trained on (RunContext.data_inputs), how
        deep it ranks, on which device and with which metrics, plus the SID and backbone
        settings for a generative method. Nothing else changes them."""
        spec = self.specs[method]
        s = self.settings
        out = {"method": method, "config": to_dict(self.method_cfgs[method]),
               **self.context(method).data_inputs(), "topk": s.topk, "device": s.device,
               "ks": list(s.eval.ks)}
        if spec.kind == "generative":
            out.update(s.generative_inputs())
        if spec.depends_on:
            out["depends_on"] = {d: self.method(d).dependents_read() for d in spec.depends_on}
        versions = self.method(method).code_versions()
        if versions:
            out["code_versions"] = versions
        return out

    def key(self, method):
        """The key recorded in a method's manifest: its results are up to date when equal."""
        return key_of("results", self.inputs(method))
