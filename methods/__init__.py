"""Method registry. Every module in this package is imported on first use, and registers its
methods with `@register("name")`; heavy backends (torch, RecBole, transformers) are imported
inside the methods, so listing or validating names stays fast.

Adding a method: one new file here with a `@register`-ed subclass of `Method`, its default
hyperparameters in methods/configs/<name>.yaml, and its name in a profile's `enabled` list.
"""
import importlib
import pkgutil
from pathlib import Path

import yaml

from benchmark.errors import unknown_name

from .base import Method

_REGISTRY = {}
_LOADED = False
CONFIG_DIR = Path(__file__).parent / "configs"


def register(name):
    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise RuntimeError(f"method '{name}' registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return wrap


def _load_all():
    global _LOADED
    if not _LOADED:
        for mod in pkgutil.iter_modules(__path__):
            if not mod.name.startswith("_") and mod.name != "base":
                importlib.import_module(f"{__name__}.{mod.name}")
        _LOADED = True


def names():
    _load_all()
    return sorted(_REGISTRY)


def get(name):
    _load_all()
    if name not in _REGISTRY:
        raise unknown_name("method", name, _REGISTRY)
    return _REGISTRY[name]


def default_config(name):
    """The method's own YAML (methods/configs/<name>.yaml), the 'defaults' layer."""
    get(name)
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        return {}
    with open(path) as f:
        return yaml.safe_load(f) or {}


def all_default_configs():
    return {n: default_config(n) for n in names()}


__all__ = ["Method", "register", "names", "get", "default_config", "all_default_configs"]
