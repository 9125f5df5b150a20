"""Configuration sections as dataclasses (TRL's config-as-schema, ../shared/DESIGN.md "Style").

The YAML files hold the defaults (each key once, with its comment); a dataclass holds the schema
of a section: its keys, their types and allowed values, and `__post_init__` checks that span
several keys. `build(cls, section, where)` turns a resolved section into the dataclass: an
unknown or missing key, a wrong type, a value outside a `Literal` or outside its `Range`
(`Annotated[int, Range(1)]`, or the aliases below) is one line naming the key, the value and
what is allowed (`ConfigKeyError`; protocol/config.py adds the file or --set it came from).
Nested dataclass fields are built from nested sections, so `SFTConfig(**section)` is never
written by hand.
"""
import dataclasses
import types
import typing
from typing import Annotated

from .errors import BenchmarkError, did_you_mean


class ConfigKeyError(BenchmarkError):
    """A configuration value that is wrong: `key` (dotted, from the top of its section tree)
    and what is wrong with it."""

    def __init__(self, key, detail):
        super().__init__(detail)
        self.key, self.detail = key, detail

    def under(self, prefix):
        """The same error seen from the section `prefix` above it."""
        if not prefix:
            return self
        key = f"{prefix}.{self.key}"
        return ConfigKeyError(key, self.detail.replace(f"'{self.key}'", f"'{key}'", 1))


def out_of_range(key, value, allowed):
    """The one-line error of a value outside what `key` allows (a `__post_init__` check)."""
    return ConfigKeyError(key, f"'{key}' = {value!r} is out of range: must be {allowed}")


def require(ok, key, value, allowed):
    """A rule across keys (a `__post_init__` check): out_of_range(key, value, allowed) unless
    `ok`."""
    if not ok:
        raise out_of_range(key, value, allowed)


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number may take: lo <= v <= hi (`open_lo`: lo < v); None = unbounded."""
    lo: float | None = None
    hi: float | None = None
    open_lo: bool = False

    def __contains__(self, v):
        return ((self.lo is None or (v > self.lo if self.open_lo else v >= self.lo))
                and (self.hi is None or v <= self.hi))

    def __str__(self):
        if self.lo is not None and self.hi is not None and not self.open_lo:
            return f"in [{self.lo}, {self.hi}]"
        parts = (([f"{'>' if self.open_lo else '>='} {self.lo}"] if self.lo is not None else [])
                 + ([f"<= {self.hi}"] if self.hi is not None else []))
        return " and ".join(parts)


PosInt = Annotated[int, Range(1)]                       # sizes, counts, epochs
NonNegInt = Annotated[int, Range(0)]                    # 0 has a meaning (e.g. 'per epoch')
PosFloat = Annotated[float, Range(0, open_lo=True)]     # learning rates, temperatures
NonNegFloat = Annotated[float, Range(0)]                # loss weights, decay
Prob = Annotated[float, Range(0, 1)]                    # probabilities, ratios
Seed = Annotated[int, Range(0, 2**32 - 1)]              # what numpy's seeding accepts


def build(cls, data, where=""):
    """`cls` from the mapping `data`; `where` names the section in errors (e.g. 'lasar.rl';
    '' for the top level of the shared configuration)."""
    name = (lambda key: f"{where}.{key}" if where else key)
    if not isinstance(data, dict):
        raise ConfigKeyError(where, f"'{where}' must be a mapping of keys, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            raise BenchmarkError(f"unknown configuration key '{name(key)}'"
                                 f"{did_you_mean(key, fields)}; valid keys here: "
                                 + ", ".join(sorted(fields)))
    missing = [n for n, f in fields.items() if n not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise BenchmarkError(f"missing configuration key(s) {', '.join(map(name, missing))}")
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {k: coerce(hints[k], v, name(k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigKeyError as e:              # __post_init__: settings that do not fit together
        raise e.under(where) from None


def _name(tp):
    return getattr(tp, "__name__", str(tp))


def _kind(tp):
    return {int: "an integer", float: "a number"}.get(tp, _name(tp))


def coerce(tp, value, where):
    """`value` checked against the type `tp` (nested dataclasses built). -> the value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        value = coerce(args[0], value, where)
        for r in args[1:]:
            if isinstance(r, Range) and value not in r:
                raise out_of_range(where, value, f"{_kind(args[0])} {r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for a in inner:
            try:
                return coerce(a, value, where)
            except BenchmarkError as e:
                errors.append(e)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise ConfigKeyError(where, f"'{where}' must be one of "
                                        f"{', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigKeyError(where, f"'{where}' must be a list, got {value!r}")
        if not args:
            return list(value)
        return [coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigKeyError(where, f"'{where}' must be a mapping, got {value!r}")
        if not args:
            return dict(value)
        return {coerce(args[0], k, f"{where} key"): coerce(args[1], v, f"{where}.{k}")
                for k, v in value.items()}
    if tp is typing.Any:
        return value
    ok = (isinstance(value, bool) if tp is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
          isinstance(value, int) and not isinstance(value, bool) if tp is int else
          isinstance(value, tp))
    if not ok:
        raise ConfigKeyError(where, f"'{where}' must be {_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def to_dict(obj):
    """A config dataclass as plain data (for hashing, manifests, JSON)."""
    return dataclasses.asdict(obj)


def replace(obj, **changes):
    """A copy of a config dataclass with some keys changed (a study's variant)."""
    return dataclasses.replace(obj, **changes)
