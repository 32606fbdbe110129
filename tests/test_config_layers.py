"""Layered workflow configs (softcot.config_layers): the merge rule, `extends:` chains and their errors, the
layer order (config.yaml < base < overlay < later --configfile < --config), and the five paper presets,
each a short overlay on config/paper_base.yaml that resolves to the paper's settings."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from softcot.config_layers import ConfigLayerError, load, merge, resolve

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, data: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def test_merge_is_nested_later_wins_lists_replace_and_inputs_stay_untouched():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"d": {"e": 1}}}
    over = {"a": {"y": [3]}, "b": {"now": "a mapping"}, "c": {"d": {"f": 2}}, "n": None}
    out = merge(base, over)
    assert out == {"a": {"x": 1, "y": [3]}, "b": {"now": "a mapping"}, "c": {"d": {"e": 1, "f": 2}}, "n": None}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1, "c": {"d": {"e": 1}}} and over["a"] == {"y": [3]}
    out["a"]["y"].append(4)
    assert over["a"]["y"] == [3]                                   # no shared lists either


def test_merge_follows_snakemakes_update_config():
    from snakemake.utils import update_config
    cases = [({"a": {"b": 1}}, {"a": {"c": 2}}), ({"a": 1}, {"a": {"c": 2}}), ({"a": {"b": 1}}, {"a": 3}),
             ({"a": {"b": 1}}, {"a": {}}), ({}, {"a": {"b": {"c": [1]}}})]
    for base, over in cases:
        expected = yaml.safe_load(yaml.safe_dump(base))
        update_config(expected, over)
        assert merge(base, over) == expected


def test_extends_puts_the_base_beneath_with_a_path_relative_to_the_overlay(tmp_path):
    write(tmp_path / "base.yaml", {"train": {"lr": 1, "steps": 10, "modes": ["hard", "soft"]}, "figures": {"dpi": 1}})
    write(tmp_path / "presets" / "mid.yaml", {"extends": "../base.yaml", "train": {"steps": 20}})
    over = write(tmp_path / "presets" / "top.yaml", {"extends": "mid.yaml", "train": {"modes": ["fuzzy"]}, "x": 1})
    assert load(over) == {"train": {"lr": 1, "steps": 20, "modes": ["fuzzy"]}, "figures": {"dpi": 1}, "x": 1}


def test_layer_order_defaults_base_overlay_later_configfile_then_config(tmp_path):
    defaults = write(tmp_path / "config.yaml", {"experiment": "toy", "train": {"lr": 0, "steps": 0, "seeds": [0],
                                                                              "group": 0, "batch": 0}})
    write(tmp_path / "base.yaml", {"train": {"lr": 1, "steps": 1, "seeds": [0, 1, 2], "group": 1}})
    overlay = write(tmp_path / "overlay.yaml", {"extends": "base.yaml", "experiment": "paper", "train": {"lr": 2,
                                                                                                        "steps": 2}})
    later = write(tmp_path / "later.yaml", {"train": {"steps": 3}})
    cfg = resolve([defaults], [overlay, later], {"experiment": "cli"})
    assert cfg == {"experiment": "cli", "train": {"lr": 2, "steps": 3, "seeds": [0, 1, 2], "group": 1, "batch": 0}}
    assert "extends" not in cfg
    # without --configfile: the Snakefile's own config alone
    assert resolve([defaults], [], {}) == yaml.safe_load(defaults.read_text())
    # --replace-workflow-config: no defaults
    assert resolve([], [overlay], {}) == {"experiment": "paper", "train": {"lr": 2, "steps": 2, "seeds": [0, 1, 2],
                                                                          "group": 1}}


def test_key_order_is_snakemakes(tmp_path):
    """Snakemake starts from the command line's layers, so their keys come first; lists built by iterating a
    mapping (the study's levers) depend on it."""
    defaults = write(tmp_path / "config.yaml", {"study": {"levers": {"B16": {}}}, "a": 1})
    extra = write(tmp_path / "extra.yaml", {"study": {"levers": {"G16": {}, "slow": {}}}})
    cfg = resolve([defaults], [extra], {})
    assert list(cfg) == ["study", "a"] and list(cfg["study"]["levers"]) == ["G16", "slow", "B16"]


@pytest.mark.parametrize("text,error", [
    ("extends: missing.yaml\n", "missing.yaml: config file not found (named by `extends` in"),
    ("extends: [a.yaml]\n", "`extends` must be one file name"),
    ("extends: ''\n", "`extends` must be one file name"),
    ("- a list\n", "expected a mapping of config keys"),
])
def test_bad_extends_names_the_file_and_the_fix(tmp_path, text, error):
    f = write(tmp_path / "over.yaml", text)
    with pytest.raises(ConfigLayerError, match=error.replace("(", r"\(").replace("[", r"\[")) as e:
        load(f)
    assert "over.yaml" in str(e.value)


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigLayerError, match="forms a cycle"):
        load(tmp_path / "a.yaml")


def test_extends_is_not_a_command_line_value(tmp_path):
    with pytest.raises(ConfigLayerError, match="--config extends"):
        resolve([], [], {"extends": "x.yaml"})


def test_config_values_are_typed_as_in_a_config_file(tmp_path):
    """Snakemake hands a nested --config value over with every scalar a string; resolve() types them as
    Snakemake's own loader types the same YAML in a config file."""
    from snakemake.cli import parse_config
    from snakemake.common.configfile import load_configfile
    text = ("{settings: {rollout: {max_cot_tokens: 0}, steps: 12, optim: {lr: 1e-5, warmup_steps: 2.5}, "
            "shuffle_advantages: true, data: {prompt_template: 'Q: {question}', val: null}, tags: [1, x]}}")
    from_cli = resolve([], [], parse_config([f"train={text}"]))
    from_file = resolve([], [write(tmp_path / "c.yaml", f"train: {text}\n")], {}, loader=load_configfile)
    assert from_cli == from_file
    s = from_cli["train"]["settings"]
    assert s["rollout"]["max_cot_tokens"] == 0 and s["steps"] == 12 and s["shuffle_advantages"] is True
    assert s["optim"] == {"lr": "1e-5", "warmup_steps": 2.5}                 # YAML 1.1 in both: `1e-5` is a string
    assert s["data"] == {"prompt_template": "Q: {question}", "val": None} and s["tags"] == [1, "x"]


# The five paper presets: what each one sets, then what they share (the paper's training settings).
PAPER_PRESETS = {
    #                     train/val data  model                                lr      train CoT budget
    "llama3b_gsm8k":      ("gsm8k",      "meta-llama/Llama-3.2-3B-Instruct", 6e-6, 128),
    "llama3b_math":       ("math",       "meta-llama/Llama-3.2-3B-Instruct", 6e-6, 512),
    "llama3b_deepscaler": ("deepscaler", "meta-llama/Llama-3.2-3B-Instruct", 6e-6, 512),
    "llama8b_gsm8k":      ("gsm8k",      "meta-llama/Llama-3.1-8B-Instruct", 3e-6, 128),
    "qwen3b_math":        ("math",       "Qwen/Qwen2.5-3B-Instruct",         8e-6, 512),
}


def test_every_paper_preset_is_an_overlay_on_the_paper_base():
    presets = {p.stem for p in (ROOT / "config" / "presets").glob("*.yaml")}
    assert set(PAPER_PRESETS) <= presets
    for name in PAPER_PRESETS:
        raw = yaml.safe_load((ROOT / "config" / "presets" / f"{name}.yaml").read_text())
        assert raw["extends"] == "../paper_base.yaml", name


@pytest.mark.parametrize("name", PAPER_PRESETS)
def test_paper_preset_resolves_to_the_papers_settings(name):
    from snakemake.utils import validate
    bench, model, lr, cot = PAPER_PRESETS[name]
    defaults = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg = resolve([ROOT / "config.yaml"], [ROOT / "config" / "presets" / f"{name}.yaml"], {})
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    assert "extends" not in cfg
    assert cfg["experiment"] == cfg["preset"] == name
    sets = cfg["data"]["sets"]
    assert cfg["data"]["source"] == "benchmarks"
    rev = {"revision": "main"}                 # every hub download names its revision (pin a commit to freeze it)
    assert sets["train"] == {"benchmark": bench, "split": "train", **rev}
    assert sets["val"] == {"benchmark": bench, "split": "train", "limit": 200, **rev}
    assert cfg["data"]["test_sets"] == ["gsm8k", "math500", "olympiadbench"]
    assert cfg["data"]["ood_sets"] == ["hellaswag", "arc", "mmlu"]
    assert {k: sets[k] for k in ("gsm8k", "math500", "olympiadbench", "hellaswag", "arc", "mmlu")} == {
        "gsm8k": {"benchmark": "gsm8k", "split": "test", **rev},
        "math500": {"benchmark": "math500", "split": "test", **rev},
        "olympiadbench": {"benchmark": "olympiadbench", "split": "train", **rev},
        "hellaswag": {"benchmark": "hellaswag", "split": "validation", **rev},
        "arc": {"benchmark": "arc", "split": "test", **rev}, "mmlu": {"benchmark": "mmlu", "split": "test", **rev}}
    assert cfg["base"]["model"] == {"name_or_path": model, "chat_template": False, **rev}
    assert cfg["train"]["modes"] == ["hard", "soft", "fuzzy"] and cfg["train"]["seeds"] == [0, 1, 2]
    assert cfg["train"]["settings"] == {
        "steps": 4000, "prompts_per_step": 2, "group_size": 32, "rollout_batch": 64, "micro_batch": 4,
        "save_every": 50, "eval_every": 100, "keep_checkpoints": 2,
        "data": {"val_size": 200, "prompt_template": "paper"},
        "rollout": {"max_cot_tokens": cot, "max_answer_tokens": 32, "answer_temperature": 1.0},
        "optim": {"lr": lr, "warmup_steps": 20, "schedule": "cosine", "grad_clip": None},
        "gradient_checkpointing": True, **({"strategy": "fsdp"} if name == "llama8b_gsm8k" else {})}
    assert cfg["eval"] == {
        "settings": ["hard_greedy", "hard_sample", "fuzzy_greedy", "fuzzy_sample", "soft_greedy", "soft_sample"],
        "n_samples": 32, "prompt_template": "paper",
        "rollout": {"max_cot_tokens": 512, "max_answer_tokens": 32, "answer_temperature": 0.0},
        "batch_size": 128, "shard_size": 32, "limit": None}
    assert cfg["ood"] == {"limit": 100000, "batch_size": 32}
    assert cfg["ablations"] == {"mode": "fuzzy", "gamma": [0.1, 1.0, 3.0], "tau": [0.001, 0.01, 0.1], "seeds": [0, 1]}
    assert cfg["figures"] == {"dpi": 150, "width": 4.0, "height": 3.0, "font_size": 9, "smooth": 25}
    assert cfg["resources"] == {
        "train": {"threads": 8, "gpu": 8, "cpus_per_gpu": 8, "mem_mb": 480000, "runtime": 5760, "retries": 3,
                  "gpu_memory_gb": 80},
        "evaluate": {"threads": 8, "gpu": 1, "cpus_per_gpu": 8, "mem_mb": 64000, "runtime": 720, "retries": 2,
                     "per_model": False}}
    # the rest comes from config.yaml, as before: the toy's unused settings and the study
    assert cfg["pretrain"] == defaults["pretrain"] and cfg["data"]["toy"] == defaults["data"]["toy"]
    assert cfg["study"] == defaults["study"]
    assert set(cfg) == set(defaults)
