"""One run's results folder, read once into one value that every report writer takes.

The folder is the output contract (../shared/DESIGN.md): results/<ds>/<profile>/ (or one seed's
seed-<s>/ under it) with

  <method>/{predictions.jsonl, metrics.json, manifest.json}   each method with results
  external/<name>/...                                          rows scored from outside
  lasar/studies.json, latentr3/studies.json                    the methods' studies
  bench/cot.json                                               Table 4's timing
  _scaling/<label>/<method>/...                                Table 5's larger backbones
  _sensitivity/<label>/<method>/...                            sensitivity rows (baselines)
  plan.json                                                    the estimates made before the run

`load_results(root, eval_cfg)` lists it once and reads each manifest and metrics file; the
predictions of a method are read the first time a writer asks for them, once, and kept, as are
values derived from several rows (Table 1's p-values) that two writers share (`derived`).
Nothing here writes.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protocol.metrics import per_user, target_ranks

KS = (5, 10, 20)


def _read_json(path):
    """The JSON in `path`, or None when the file is absent (a malformed file raises: the runner
    writes every file whole, so one is a bug to see, not a row to drop)."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path) as f:
        return json.load(f)


def _studies(path):
    """lasar/studies.json as a dict, or {} if it is absent or unreadable (each table and figure
    then leaves out what it lacks)."""
    try:
        d = _read_json(path)
    except ValueError:
        return {}
    return d if isinstance(d, dict) else {}


def per_user_from(targets, topk, ks=KS):
    """{metric: (n,) per-user values} from the targets and the top-k lists."""
    width = max(len(t) for t in topk)
    grid = np.array([t + [None] * (width - len(t)) for t in topk], dtype=object)
    return per_user(target_ranks(grid, np.array(targets, dtype=object)), ks)


@dataclass
class Predictions:
    """predictions.jsonl: users, targets, top-k lists and the optional per-user fields a method
    writes beside them (LASAR: latent_steps; a field some row lacks is left out)."""
    users: list
    targets: list
    topk: list
    fields: dict


def read_predictions(folder):
    users, targets, topk, extra = [], [], [], {}
    with open(Path(folder) / "predictions.jsonl") as f:
        for i, line in enumerate(f):
            r = json.loads(line)
            users.append(r.pop("user"))
            targets.append(r.pop("target"))
            topk.append(r.pop("topk"))
            for k, v in r.items():
                extra.setdefault(k, [None] * i).append(v)
            for k in extra.keys() - r.keys():
                extra[k].append(None)
    return Predictions(users, targets, topk,
                       {k: v for k, v in extra.items() if None not in v})


@dataclass
class MethodResults:
    """One method's (or external row's) folder: its metrics and manifest, and its predictions
    and per-user metrics read on first use."""
    name: str
    folder: Path
    metrics: dict
    manifest: dict
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def has_predictions(self):
        return (self.folder / "predictions.jsonl").is_file()

    def predictions(self):
        if "predictions" not in self._cache:
            self._cache["predictions"] = read_predictions(self.folder)
        return self._cache["predictions"]

    def per_user(self, ks=KS):
        """(users, {metric: (n,) per-user values}) recomputed from predictions.jsonl."""
        key = ("per_user", tuple(ks))
        if key not in self._cache:
            p = self.predictions()
            self._cache[key] = (p.users, per_user_from(p.targets, p.topk, ks))
        return self._cache[key]

    def subset_metrics(self, user_ids, ks=KS):
        """The mean metrics over `user_ids` (a study's users), from the per-user values."""
        users, per = self.per_user(ks)
        pos = {u: i for i, u in enumerate(users)}
        idx = np.array([pos[u] for u in user_ids])
        return {k: float(v[idx].mean()) for k, v in per.items()}


def method_folders(root):
    """{name: folder} of the method folders of a results folder (metrics.json and
    manifest.json present)."""
    root = Path(root)
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not p.name.startswith((".", "_")) and (p / "metrics.json").is_file()
            and (p / "manifest.json").is_file()}


def _rows(folders):
    return {name: MethodResults(name, p, _read_json(p / "metrics.json"),
                                _read_json(p / "manifest.json")) for name, p in folders.items()}


def dataset_profile(root):
    """(dataset, profile label) of a results folder: results/<ds>/<profile>, or one seed's
    folder results/<ds>/<profile>/seed-<s> (label '<profile>, seed <s>')."""
    root = Path(root)
    if root.name.startswith("seed-") and root.name[5:].isdigit():
        return root.parent.parent.name, f"{root.parent.name}, seed {root.name[5:]}"
    return root.parent.name, root.name


@dataclass
class RunResults:
    """Everything one results folder holds, read once (module docstring)."""
    root: Path
    dataset: str
    profile: str                  # the label tables show: 'cpu', or 'cpu, seed 43'
    eval: object                  # protocol.settings.EvalConfig: ks, bootstrap settings
    methods: dict                 # {name: MethodResults}
    external: dict                # {name: MethodResults} (`python -m benchmark score`)
    studies: dict                 # lasar/studies.json ({} when absent or unreadable)
    latentr3_studies: dict        # latentr3/studies.json (None when absent)
    bench_cot: dict               # bench/cot.json (None when absent)
    scaling: dict                 # {label: {name: MethodResults}} of _scaling/<label>/
    sensitivity: dict             # {label: {name: MethodResults}} of _sensitivity/<label>/
    plan: dict = None             # plan.json: the stages' estimates (benchmark/estimate.py)
    derived: dict = field(default_factory=dict, repr=False)

    @property
    def boot(self):
        """(resamples, seed) of every bootstrap over this folder's users."""
        return self.eval.bootstrap_resamples, self.eval.bootstrap_seed

    def rows(self):
        """Table 1's rows: the methods, then the external ones keyed 'external/<name>'."""
        return {**self.methods, **{f"external/{n}": r for n, r in self.external.items()}}

    def shared(self, key, compute):
        """A value derived from several rows that more than one writer needs (computed once)."""
        if key not in self.derived:
            self.derived[key] = compute()
        return self.derived[key]


def load_results(root, eval_cfg):
    """The RunResults of results folder `root` (every file listed and read once)."""
    root = Path(root)
    ds, prof = dataset_profile(root)
    external = {n: p for n, p in method_folders(root / "external").items()
                if (p / "predictions.jsonl").is_file()}
    return RunResults(root=root, dataset=ds, profile=prof, eval=eval_cfg,
                      methods=_rows(method_folders(root)), external=_rows(external),
                      studies=_studies(root / "lasar" / "studies.json"),
                      latentr3_studies=_read_json(root / "latentr3" / "studies.json"),
                      bench_cot=_read_json(root / "bench" / "cot.json"),
                      scaling=_variants(root / "_scaling"),
                      sensitivity=_variants(root / "_sensitivity"),
                      plan=_studies(root / "plan.json") or None)


def _variants(folder):
    """{label: {name: MethodResults}} of the variant runs under `folder` (Table 5's larger
    backbones, the sensitivity rows), labels with no method left out."""
    if not folder.is_dir():
        return {}
    out = {p.name: _rows(method_folders(p)) for p in sorted(folder.iterdir()) if p.is_dir()}
    return {k: v for k, v in out.items() if v}
