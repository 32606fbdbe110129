"""Semantic validation of the workflow config (config.yaml or a preset) before any job starts.

The JSON schema (workflow/schemas/config.schema.yaml) checks structure and types; this builds softcot's
typed configs from each section, so an unknown key, tau <= 0, k > n, a missing model path or data file
fails while Snakemake builds the DAG, naming the key (e.g. `train.settings.mode.tau`). On GPUs
(`resources.train.gpu` > 0) it also runs the memory plan (softcot.plan), prints it to stderr and refuses a
training config whose per-GPU peak exceeds `resources.train.gpu_memory_gb`.
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

from softcot.config import ConfigError, from_dict, merge
from softcot.schema import EvalConfig, PretrainConfig, TrainConfig


class WorkflowConfigError(ConfigError):
    pass


def _fail(key: str, err: Exception) -> None:
    raise WorkflowConfigError(f"config key {key}{str(err)}") from None


def check_config(config: dict) -> None:
    placeholder_file = str(Path(__file__))          # stands in for files the workflow will create
    toy = config["data"]["source"] == "toy"
    if toy:
        from softcot.toy import ToyConfig
        for key, cls, data in (("data.toy", ToyConfig, config["data"].get("toy")),
                               ("pretrain", PretrainConfig, config.get("pretrain"))):
            try:
                from_dict(cls, dict(data or {}))
            except ConfigError as e:
                _fail(key + ".", e)
    else:
        _check_sets(config)
    model = _workflow_model(config)
    settings = _train_settings(config)
    try:
        from_dict(TrainConfig, settings)
    except ConfigError as e:
        _fail("train.settings.", e)
    for name, lever in config.get("study", {}).get("levers", {}).items():
        try:
            from_dict(TrainConfig, merge(copy.deepcopy(settings), copy.deepcopy(lever)))
        except ConfigError as e:
            _fail(f"study.levers.{name}.", e)
    _check_study_extras(config)
    ev = copy.deepcopy(config["eval"])
    ev["model"] = {**model, **ev.get("model", {})}
    ev["data"] = placeholder_file
    try:
        from_dict(EvalConfig, ev)
    except ConfigError as e:
        _fail("eval.", e)
    _check_memory(config)
    for key in ("modes", "seeds"):
        if not config["train"][key]:
            raise WorkflowConfigError(f"config key train.{key}: empty; give at least one")
    for name in config["data"]["test_sets"] + config["data"]["ood_sets"]:
        if not toy and name not in config["data"].get("sets", {}):
            raise WorkflowConfigError(f"config key data.test_sets/ood_sets: {name!r} is not defined under data.sets")


def _workflow_model(config: dict) -> dict:
    if config["data"]["source"] == "toy":
        return {"name_or_path": "softcot/embedded-toy-base"}      # built by the pretrain rule
    return copy.deepcopy(config["base"]["model"])


def _train_settings(config: dict) -> dict:
    """train.settings as TrainConfig fields, with stand-ins for the model and data files the workflow makes."""
    placeholder_file = str(Path(__file__))
    model = _workflow_model(config)
    settings = copy.deepcopy(config["train"]["settings"])
    settings["model"] = {**model, **settings.get("model", {})}
    settings.setdefault("data", {})
    settings["data"].update(train=placeholder_file, val=placeholder_file)
    return settings


def train_config(config: dict) -> TrainConfig:
    """The train jobs' typed config: train.settings over TrainConfig's defaults (softcot.schema, the one source
    of defaults), for the rules that need a training value, e.g. the diagnostics' rollout budget. The model and
    data are stand-ins; raises WorkflowConfigError naming the key."""
    try:
        return from_dict(TrainConfig, _train_settings(config))
    except ConfigError as e:
        _fail("train.settings.", e)


def scaled_pretrain(config: dict, name: str) -> dict:
    """The pretrain section with study.scale.bases.<name>'s overrides over it (the scaled base's config)."""
    bases = config.get("study", {}).get("scale", {}).get("bases", {})
    if name not in bases:
        raise WorkflowConfigError(f"config key study.scale.bases: no base {name!r}; configured: {sorted(bases)}")
    return merge(copy.deepcopy(config.get("pretrain") or {}), copy.deepcopy(bases[name]))


def _check_study_extras(config: dict) -> None:
    """study.positions edges in increasing order; each study.scale base a valid pre-training config, toy only."""
    study = config.get("study", {})
    edges = study.get("positions", {}).get("edges", [])
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise WorkflowConfigError(f"config key study.positions.edges: got {edges}; give increasing CoT steps, "
                                  f"e.g. [1, 2, 4, 8, 16, 32]")
    bases = study.get("scale", {}).get("bases", {})
    if bases and config["data"]["source"] != "toy":
        # presets inherit config.yaml's study section: their study runs without the scale part (study.smk)
        return
    for name in bases:
        try:
            from_dict(PretrainConfig, scaled_pretrain(config, name))
        except ConfigError as e:
            _fail(f"study.scale.bases.{name}.", e)


def _check_sets(config: dict) -> None:
    from softcot.benchmarks import BENCHMARKS
    for name, spec in config["data"].get("sets", {}).items():
        key = f"data.sets.{name}"
        if spec.get("benchmark") not in BENCHMARKS:
            raise WorkflowConfigError(f"config key {key}.benchmark: got {spec.get('benchmark')!r}; allowed: "
                                      f"{', '.join(sorted(BENCHMARKS))}")
        if spec.get("path") and not Path(spec["path"]).exists():
            raise WorkflowConfigError(f"config key {key}.path: {spec['path']!r} does not exist; point it at a local "
                                      f"copy of the benchmark or remove it to load from the hub")
    for name in ("train", "val"):
        if name not in config["data"].get("sets", {}):
            raise WorkflowConfigError(f"config key data.sets.{name}: required for benchmark experiments")


def _check_memory(config: dict) -> None:
    """The memory plan of the training jobs (and of each study lever) against the declared GPU memory."""
    from softcot import plan
    if not ((config.get("resources") or {}).get("train") or {}).get("gpu", 0):
        return                                            # CPU jobs: nothing to size against a GPU
    variants = [("", config)]
    for name, lever in config.get("study", {}).get("levers", {}).items():
        over = copy.deepcopy(config)
        merge(over["train"]["settings"], copy.deepcopy(lever))
        variants.append((f" (study.levers.{name})", over))
    for where, cfg in variants:
        try:
            p = plan.estimate(plan.workflow_setting(cfg))
            if not where:
                print("softcot memory plan of the train jobs:\n" + plan.describe(p), file=sys.stderr)
            plan.check_fits(p)
        except ConfigError as e:
            raise WorkflowConfigError(f"config key {e}{where}") from None
