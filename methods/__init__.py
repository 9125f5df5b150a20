"""The method registry: one line per method, imported only when it is used.

Each entry names the method, where its class lives, how the paper's tables call it, its kind
(discriminative or generative: generative methods read the shared `sids` and `lm` settings),
the methods whose configuration it reads (`depends_on`: LASAR's Stage 1 is MiniOneRec's SFT
model) and a rough cost (training minutes in the cpu profile; a parallel run starts the longest
chain first). Listing names and reading defaults import no method code, so they never load
torch (lm-evaluation-harness's lazy registry); `get(name)` imports the method's module.

Adding a method: its module (a `Method` subclass with a `config_class`), its defaults in
methods/configs/<name>.yaml, and one `register(...)` line below.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from protocol.errors import unknown_name

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str                 # "module:Class"
    display_name: str           # as in the paper's tables
    kind: str                   # "discriminative" | "generative"
    depends_on: tuple = ()
    cost: int = 10              # rough training minutes in the cpu profile

    def load(self):
        """The method class (imports its module)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


_SPECS = {}


def register(name, target, display_name, kind, depends_on=(), cost=10):
    if name in _SPECS:
        raise RuntimeError(f"method '{name}' registered twice")
    _SPECS[name] = MethodSpec(name, target, display_name, kind, tuple(depends_on), cost)


register("sasrec", "methods.recbole_models:SASRec", "SASRec", "discriminative", cost=30)
register("gru4rec", "methods.recbole_models:GRU4Rec", "GRU4Rec", "discriminative", cost=12)
register("rearec", "methods.rearec:ReaRec", "ReaRec", "discriminative", cost=20)
register("minionerec", "methods.minionerec:MiniOneRec", "MiniOneRec", "generative", cost=25)
register("lcrec", "methods.lcrec:LCRec", "LC-Rec", "generative", cost=40)
register("lasar", "methods.lasar.method:Lasar", "LASAR", "generative", ("minionerec",), 25)
register("cot_gream", "methods.cot_gream:ExplicitCoT", "Explicit CoT (GREAM)", "generative",
         ("minionerec",), 20)
register("latentr3", "methods.latentr3.method:LatentR3", "LatentR3", "generative",
         ("minionerec",), 20)


def names():
    return sorted(_SPECS)


def spec(name):
    if name not in _SPECS:
        raise unknown_name("method", name, _SPECS)
    return _SPECS[name]


def get(name):
    """The method class of `name` (its module imported on first use)."""
    return spec(name).load()


def default_config(name):
    """The method's own YAML (methods/configs/<name>.yaml), the 'defaults' layer."""
    spec(name)
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def all_default_configs():
    return {n: default_config(n) for n in names()}


def default_files():
    """{method: its defaults' YAML file} (named in configuration errors)."""
    return {n: CONFIG_DIR / f"{n}.yaml" for n in names()}


__all__ = ["MethodSpec", "register", "names", "spec", "get", "default_config",
           "all_default_configs", "default_files"]
