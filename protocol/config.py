"""Layered configuration: defaults < profile < method section < command line.

- defaults: protocol/profiles/defaults.yaml plus each method's own YAML (methods/configs/)
- profile:  protocol/profiles/<profile>.yaml (shared keys, and `methods: {name: {...}}`)
- method:   the method's section of the profile
- command line: --set key=value (shared) or --set method.key=value

Unknown keys, wrong types and values out of range are errors that name the key and the file or
--set the value came from (`Config.source`: every key remembers its layer). The method defaults
are handed in by the caller (the orchestration reads them from the registry's YAML files), so this
module never imports a method. `Config.settings` is the shared configuration as typed sections
(protocol/settings.py).
"""
import copy
from pathlib import Path

import yaml

from .errors import BenchmarkError, did_you_mean, unknown_name
from .schema import ConfigKeyError, build
from .settings import Settings

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


def profile_names():
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml") if p.stem != "defaults")


def read_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise BenchmarkError(f"{path}{line}: malformed YAML ({getattr(e, 'problem', e)})") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"{path}: must be a mapping of configuration keys")
    return data


def _type_ok(default, value):
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def merge(base, over, source, prefix="", sources=None):
    """Deep-merge `over` into a copy of `base`; every key of `over` must exist in `base`.
    `sources`: {dotted key: source} gets `source` for every key `over` sets."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        name = f"{prefix}{key}"
        if sources is not None:
            sources[name] = str(source)
        if key not in base:
            raise BenchmarkError(f"{source}: unknown configuration key '{name}'"
                                 f"{did_you_mean(key, base)}; valid keys here: "
                                 + ", ".join(sorted(base)))
        if isinstance(base[key], dict) and base[key] and isinstance(value, dict):
            out[key] = merge(base[key], value, source, f"{name}.", sources)
        elif not _type_ok(base[key], value):
            raise BenchmarkError(f"{source}: '{name}' must be {type(base[key]).__name__}, "
                                 f"got {value!r}")
        else:
            out[key] = copy.deepcopy(value)
    return out


# YAML 1.1's other spellings of true and false: on the command line they stay words
# (`--set lm.mixed_precision=no`), only true/false are booleans (YAML 1.2's rule)
_WORDS = {"yes", "no", "on", "off", "y", "n"}


def parse_overrides(pairs):
    """['a.b=3', 'seed=1'] -> {'a': {'b': 3}, 'seed': 1} (values parsed as YAML; yes, no,
    on, off stay strings)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise BenchmarkError(f"--set {pair}: expected KEY=VALUE, e.g. --set sasrec.epochs=5")
        key, raw = pair.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = raw.strip() if raw.strip().lower() in _WORDS else yaml.safe_load(raw)
    return out


class Config:
    """The resolved shared configuration of one run, plus per-method resolution."""

    def __init__(self, profile, overrides, method_defaults, method_files=None):
        """method_defaults: {method: its YAML's mapping}; method_files: {method: that YAML's
        path} (named in errors)."""
        names = profile_names()
        if profile not in names:
            raise unknown_name("profile", profile, names)
        self.profile = profile
        defaults = read_yaml(PROFILE_DIR / "defaults.yaml")
        prof = read_yaml(PROFILE_DIR / f"{profile}.yaml")
        cli = parse_overrides(overrides)
        self._method_defaults = method_defaults
        self._method_files = dict(method_files or {})
        self._profile_sources = {}           # dotted key -> the profile file that set it
        self._cli_sources = {pair.split("=", 1)[0].strip(): f"--set {pair}"
                             for pair in overrides or []}   # --set wins over the profile
        known = set(self._method_defaults)
        # method sections are checked against each method's own YAML
        self._prof_methods = self._split_methods(prof, known, PROFILE_DIR / f"{profile}.yaml")
        self._cli_methods = self._split_methods(cli, known, "--set")
        shared = merge(defaults, prof, PROFILE_DIR / f"{profile}.yaml",
                       sources=self._profile_sources)
        self._before_cli = shared
        self.shared = merge(shared, cli, "--set")
        self.shared.pop("methods", None)                 # the per-method sections, split out
        self.settings = self.build(Settings, self.shared)   # typed, checked

    @staticmethod
    def _split_methods(layer, known, source):
        """Pull method sections out of a layer: `methods: {m: {...}}` and, on the command
        line, `m.key=value` for a registered method m."""
        sections = dict(layer.pop("methods", {}) or {})
        for name in [k for k in layer if k in known]:
            sections.setdefault(name, {}).update(layer.pop(name))
        for name in sections:
            if name not in known:
                raise BenchmarkError(f"{source}: unknown method '{name}'{did_you_mean(name, known)}"
                                     f" in the configuration; choose one of: "
                                     + ", ".join(sorted(known)))
        return sections

    def method(self, name):
        """Resolved config of method `name`: its YAML < profile section < --set."""
        base = self._method_defaults[name]
        src = PROFILE_DIR / f"{self.profile}.yaml"
        cfg = merge(base, self._prof_methods.get(name, {}), f"{src} (methods.{name})",
                    f"{name}.", self._profile_sources)
        return merge(cfg, self._cli_methods.get(name, {}), f"--set {name}.*")

    def _set_by(self, key):
        """The --set pair or profile file that set the dotted `key` (or a mapping holding it,
        set whole), else None (a defaults file)."""
        parts = key.split("[")[0].split(".")
        for layer in (self._cli_sources, self._profile_sources):
            for i in range(len(parts), 0, -1):
                if ".".join(parts[:i]) in layer:
                    return layer[".".join(parts[:i])]
        return None

    def source(self, key):
        """Where the value of the dotted `key` came from: the --set pair, the profile file or
        the defaults file."""
        top = key.split(".")[0]
        return self._set_by(key) or str(
            self._method_files.get(top, f"the defaults of '{top}'")
            if top in self._method_defaults else PROFILE_DIR / "defaults.yaml")

    def profile_value(self, key):
        """The value of the dotted shared `key` before --set: the profile's (or defaults')."""
        node = self._before_cli
        for part in key.split("."):
            node = node[part]
        return node

    def explicit(self, key):
        """Whether a profile or --set gave `key` its value (not a defaults file)."""
        return self._set_by(key) is not None

    def located(self, error):
        """The ConfigKeyError `error`, its line starting with where the bad value came from."""
        return ConfigKeyError(error.key, f"{self.source(error.key)}: {error}")

    def build(self, cls, section, where=""):
        """schema.build, a bad value's error naming the file or --set it came from."""
        try:
            return build(cls, section, where)
        except ConfigKeyError as e:
            raise self.located(e) from None

    def typed(self, name, cls):
        """Method `name`'s resolved configuration as its dataclass `cls` (checked)."""
        return self.build(cls, self.method(name), name)
