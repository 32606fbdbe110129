"""The config loader: dataclasses filled from YAML plus `key=value` overrides, validated before any work.

    cfg = load_config(TrainConfig, "train.yaml", ["mode.kind=soft", "rollout.max_cot_tokens=64"])

Every error names the key path (`rollout.max_cot_tokens`), what was given and what is allowed, so a typo
in a config fails in a second instead of after an hour on a cluster. The typed configs themselves live in
softcot.schema; `softcot validate-config` checks a file without running anything.
"""
from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: `2e-5` and `1e3` are numbers (YAML 1.1 reads them as strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def load_yaml(text: str):
    """Parse YAML text safely (no Python objects), reading `2e-5` as a number."""
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config value that cannot be used. The message names the key and what is allowed."""


def _type_name(tp) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp, key: str):
    """Check `value` against the annotation `tp`; return it (ints are accepted where floats are)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: got {value!r}; allowed: {_type_name(tp)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{key}: got {value!r}; allowed: null")
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise ConfigError(f"{key}: got {value!r}; allowed: {_type_name(tp)}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: got {value!r}; allowed: {_type_name(tp)}")
        (arg, *_) = get_args(tp) or (Any,)
        out = [_coerce(v, arg, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}; allowed: a mapping")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: got {value!r}; allowed: a mapping of {tp.__name__} fields")
        return from_dict(tp, value, prefix=key + ".")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: got {value!r}; allowed: a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: got {value!r}; allowed: an integer")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: got {value!r}; allowed: true | false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {value!r}; allowed: a string")
        return value
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and wrong types, then `validate()`."""
    if data is None:
        data = {}
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, value in data.items():
        default = _default(fields[name])
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            # A partial section keeps the field's own default for the keys it leaves out (EvalConfig's
            # rollout defaults differ from RolloutConfig's), not the nested class's defaults.
            value = {**dataclasses.asdict(default), **value}
        kwargs[name] = _coerce(value, hints[name], prefix + name)
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate(prefix)
    return obj


def _default(f: dataclasses.Field):
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` strings (values parsed as YAML) to a nested mapping, in place."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. rollout.max_cot_tokens=64")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {p} is not a section")
        node[parts[-1]] = load_yaml(raw)
    return data


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data


def merge(base: dict, over: dict) -> dict:
    """Nested update of `base` by `over`, in place: a mapping in `over` updates the mapping in `base`."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def load_config(cls, path: str | Path | None = None, overrides: list[str] | None = None,
                section: str | None = None, flags: dict | None = None):
    """Read YAML `path` (optionally one `section` of it), merge `flags` (a nested mapping, e.g. from command-line
    flags), apply `key=value` overrides, then build and validate `cls`. Errors name the file and the key."""
    data = read_yaml(path) if path else {}
    if section is not None:
        data = data.get(section) or {}
    merge(data, flags or {})
    data = apply_overrides(data, overrides or [])
    where = f"{path}: " if path else ""
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(where + str(e)) from None


def require(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {msg}")
