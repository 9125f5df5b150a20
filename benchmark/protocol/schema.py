"""Configuration sections as dataclasses (TRL's config-as-schema, ../shared/DESIGN.md "Style").

The YAML files hold the defaults (each key once, with its comment); a dataclass holds the schema
of a section: its keys, their types and allowed values, and `__post_init__` checks that span
several keys. `build(cls, section, where)` turns a resolved section into the dataclass: an
unknown or missing key, a wrong type or a value outside a `Literal` is one line naming the key.
Nested dataclass fields are built from nested sections, so `SFTConfig(**section)` is never
written by hand.
"""
import dataclasses
import types
import typing

from .errors import BenchmarkError, did_you_mean


def build(cls, data, where=""):
    """`cls` from the mapping `data`; `where` names the section in errors (e.g. 'lasar.rl';
    '' for the top level of the shared configuration)."""
    name = (lambda key: f"{where}.{key}" if where else key)
    if not isinstance(data, dict):
        raise BenchmarkError(f"'{where}' must be a mapping of keys, got {data!r}")
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
    hints = typing.get_type_hints(cls)
    kwargs = {k: coerce(hints[k], v, name(k)) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ValueError as e:                  # __post_init__: settings that do not fit together
        raise BenchmarkError(f"{where or 'configuration'}: {e}") from None


def _name(tp):
    return getattr(tp, "__name__", str(tp))


def coerce(tp, value, where):
    """`value` checked against the type `tp` (nested dataclasses built). -> the value."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
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
            raise BenchmarkError(f"'{where}' must be one of {', '.join(map(repr, args))}, "
                                 f"got {value!r}")
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise BenchmarkError(f"'{where}' must be a list, got {value!r}")
        return [coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)] if args \
            else list(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise BenchmarkError(f"'{where}' must be a mapping, got {value!r}")
        return dict(value)
    if tp is typing.Any:
        return value
    ok = (isinstance(value, bool) if tp is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
          isinstance(value, int) and not isinstance(value, bool) if tp is int else
          isinstance(value, tp))
    if not ok:
        raise BenchmarkError(f"'{where}' must be {_name(tp)}, got {value!r}")
    return float(value) if tp is float else value


def to_dict(obj):
    """A config dataclass as plain data (for hashing, manifests, JSON)."""
    return dataclasses.asdict(obj)


def replace(obj, **changes):
    """A copy of a config dataclass with some keys changed (a study's variant)."""
    return dataclasses.replace(obj, **changes)
