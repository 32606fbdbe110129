"""Layered workflow configs: a config file may start from another one with `extends: <file>`.

Snakemake has no include for config files. A paper preset is therefore an overlay that names its shared
base (`extends: ../paper_base.yaml`, a path relative to the overlay) and holds only what differs.
`resolve` rebuilds the workflow config in this order, later layers winning key by key:

    the Snakefile's configfile (config.yaml) < for each --configfile: its extends chain, then the file < --config

with Snakemake's own nested merge (mappings merge, everything else, lists included, is replaced). The
`extends` key is consumed: the resolved config does not hold it. `--config` values are typed as a config file
types them (`yaml_scalars`), so that a bad value gets the same message from either. Torch-free; imports only
PyYAML and softcot.config.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path

from softcot.config import ConfigError

EXTENDS = "extends"


class ConfigLayerError(ConfigError):
    """A bad `extends` chain; the message names the file and the fix."""


def merge(base: Mapping, over: Mapping) -> dict:
    """A new dict: `over` on top of `base`. The rule is snakemake.utils.update_config's (nested mappings
    merge, any other value replaces), so layering files here gives what Snakemake gives for the same files."""
    out = copy.deepcopy(dict(base))
    _update(out, over)
    return out


def _update(config, over: Mapping):
    for key, value in over.items():
        if not isinstance(config, Mapping):
            config = {}
        if isinstance(value, Mapping):
            config[key] = _update(config.get(key, {}), value)
        else:
            config[key] = copy.deepcopy(value)
    return config


def yaml_scalars(value):
    """A --config value with its scalars typed as in a config file. Snakemake reads a nested --config value
    (`train={settings: {steps: 0}}`) with YAML's base loader, which leaves every scalar a string ('0', 'true',
    'null'), while a config file's plain scalars are numbers, booleans and nulls. Each string that YAML reads as
    one of those becomes it (with the implicit types of the loader Snakemake uses for files, so `1e-5` stays a
    string in both); any other string is kept as it is. Quotes are gone by then: `'0'` also becomes 0."""
    import yaml
    if isinstance(value, Mapping):
        return {k: yaml_scalars(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_scalars(v) for v in value]
    if isinstance(value, str) and value.strip():
        try:
            typed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        if typed is None or isinstance(typed, (bool, int, float)):
            return typed
    return value


def _yaml_load(path: Path) -> dict:
    import yaml
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load(path: str | PathLike, loader: Callable[[Path], dict] = _yaml_load, _chain: tuple = ()) -> dict:
    """One config file with its `extends` chain merged beneath it."""
    path = Path(path)
    if path.resolve() in _chain:
        cycle = " -> ".join(map(str, _chain + (path.resolve(),)))
        raise ConfigLayerError(f"{path}: `{EXTENDS}` forms a cycle ({cycle}); remove one of the links")
    if not path.is_file():
        via = f" (named by `{EXTENDS}` in {_chain[-1]})" if _chain else ""
        raise ConfigLayerError(f"{path}: config file not found{via}; fix the path")
    data = loader(path)
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigLayerError(f"{path}: expected a mapping of config keys at the top level")
    data = dict(data)
    parent = data.pop(EXTENDS, None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent:
        raise ConfigLayerError(f"{path}: `{EXTENDS}` must be one file name (relative to this file), "
                               f"got {parent!r}")
    return merge(load(path.parent / parent, loader, _chain + (path.resolve(),)), data)


def resolve(defaults: list, configfiles: list, overrides: Mapping,
            loader: Callable[[Path], dict] = _yaml_load) -> dict:
    """The workflow config from the Snakefile's own config files, the --configfile files (in order) and the
    --config values (typed by `yaml_scalars`). The steps are Snakemake's own (it starts from the command line's layers, merges each
    Snakefile config file in and the command line's layers on top again), so that the keys come in the same
    order too: lists built by iterating a mapping, such as the study's levers, keep their order."""
    if EXTENDS in overrides:
        raise ConfigLayerError(f"--config {EXTENDS}=...: not supported; put `{EXTENDS}:` in a config file "
                               f"given with --configfile")
    overrides = yaml_scalars(overrides)
    command_line: dict = {}
    for path in configfiles:
        command_line = merge(command_line, load(path, loader))
    command_line = merge(command_line, overrides)
    config = merge({}, command_line)
    for path in defaults:
        config = merge(merge(config, load(path, loader)), command_line)
    return config
