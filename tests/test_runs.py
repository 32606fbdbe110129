"""Run names (softcot.runs): every variant and model form round-trips, bad names fail naming the allowed forms,
the wildcard regexes accept exactly what the parser accepts, and the module stays torch-free."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from softcot import runs
from softcot.runs import Model, Variant

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "hard": Variant("hard"),
    "soft": Variant("soft"),
    "fuzzy": Variant("fuzzy"),
    "multiplex": Variant("multiplex"),
    "gumbel-null": Variant("gumbel", "null"),
    "multiplex-tau0.5": Variant("multiplex", "tau0.5"),
    "soft-null": Variant("soft", "null"),
    "fuzzy-gamma1.0": Variant("fuzzy", "gamma1.0"),
    "fuzzy-gamma3": Variant("fuzzy", "gamma3"),
    "fuzzy-tau0.01": Variant("fuzzy", "tau0.01"),
    "hard-tau1e-05": Variant("hard", "tau1e-05"),
    "soft-tau1e+16": Variant("soft", "tau1e+16"),
    "soft-leverB16": Variant("soft", "leverB16"),
    "fuzzy-leverslow": Variant("fuzzy", "leverslow"),
    "soft-scaled192": Variant("soft", "scaled192"),
    "hard-scaleXL": Variant("hard", "scaleXL"),
}
BAD_VARIANTS = ["", "warm", "Soft", "soft-", "soft-nul", "soft-null-null", "soft-gamma", "soft-gamma-1",
                "soft-gamma1..0", "soft-tauabc", "soft-lever", "soft-lever_x", "soft_seed0", "base", "soft null", "soft-scale", "soft-scale-d1",
                "soft-scaled192-null", "base-scaled192"]
BAD_MODELS = ["", "Base", "soft", "soft_seed", "soft_seedx", "soft_seed-1", "soft_seed01", "warm_seed0",
              "soft-null_seed1_seed2", "base_seed0", "soft-gamma_seed0", "base-scale", "base-scale_d1",
              "base-scaled192_seed0", "base-leverB16", "base-null", "Base-scaled192"]


@pytest.mark.parametrize("name,variant", VARIANTS.items())
def test_every_variant_form_parses_and_round_trips(name, variant):
    assert runs.parse_variant(name) == variant
    assert str(variant) == name
    for seed in (0, 1, 12):
        model = f"{name}_seed{seed}"
        assert runs.parse_model(model) == Model(variant, seed)
        assert str(runs.parse_model(model)) == model == runs.model_name(name, seed) == runs.model_name(variant, seed)
        assert runs.method_of(model) == name
        assert runs.train_subdir(model) == f"train/{name}/seed{seed}"


def test_variant_properties():
    assert runs.parse_variant("soft-null").null and runs.parse_variant("soft-null").lever is None
    assert runs.parse_variant("soft-leverB16").lever == "B16" and not runs.parse_variant("soft-leverB16").null
    assert runs.parse_variant("fuzzy-gamma1.0").ablation == ("gamma", "1.0")
    assert runs.parse_variant("fuzzy-tau0.01").ablation == ("tau", "0.01")
    plain = runs.parse_variant("hard")
    assert (plain.kind, plain.tag, plain.null, plain.lever, plain.ablation) == ("hard", "", False, None, None)
    assert plain.scale is None and runs.parse_variant("soft-leverB16").scale is None
    scaled = runs.parse_variant("soft-scaled192")
    assert (scaled.scale, scaled.lever, scaled.ablation, scaled.null) == ("d192", None, None, False)


def test_builders_format_config_values_as_the_workflow_names_them():
    assert str(runs.null_variant("fuzzy")) == "fuzzy-null"
    assert str(runs.lever_variant("soft", "B16")) == "soft-leverB16"
    # the names keep str() of the YAML value: 1.0 -> "1.0", 1e-4 -> "0.0001", 1e-5 -> "1e-05", 3 -> "3"
    for value, text in ((1.0, "1.0"), (0.33, "0.33"), (1e-4, "0.0001"), (1e-5, "1e-05"), (3, "3"), (1e16, "1e+16")):
        v = runs.ablation_variant("fuzzy", "tau", value)
        assert str(v) == f"fuzzy-tau{text}" and runs.parse_variant(str(v)) == v
    with pytest.raises(ValueError, match="ablation parameter 'lr'"):
        runs.ablation_variant("fuzzy", "lr", 1.0)


def test_base_model():
    assert runs.parse_model("base") == Model() and Model().is_base and str(Model()) == "base"
    assert runs.method_of("base") == runs.BASE_METHOD == "no finetune"
    with pytest.raises(ValueError, match="'base' has no training run"):
        runs.train_subdir("base")
    assert runs.base_subdir("base") == "base" and runs.base_of("soft-null_seed2") == "base"


@pytest.mark.parametrize("scale", ["d192", "d384", "XL", "7"])
def test_scaled_base_and_its_runs(scale):
    """A scaled base is base-scale<name>; a scale variant's runs start from it, every other run from base."""
    name = f"base-scale{scale}"
    m = runs.parse_model(name)
    assert m == Model(scale=scale) and m.is_base and m.base == m and str(m) == name == runs.scaled_base(scale)
    assert runs.base_subdir(name) == name and runs.method_of(name) == f"no finetune (scale{scale})"
    with pytest.raises(ValueError, match="has no training run"):
        runs.train_subdir(name)
    v = runs.scale_variant("fuzzy", scale)
    assert str(v) == f"fuzzy-scale{scale}" and runs.parse_variant(str(v)) == v and v.scale == scale
    model = runs.model_name(v, 1)
    assert model == f"fuzzy-scale{scale}_seed1" and runs.base_of(model) == name
    assert runs.train_subdir(model) == f"train/fuzzy-scale{scale}/seed1"
    with pytest.raises(ValueError, match="is a training run, not a base; its base is 'base-scale"):
        runs.base_subdir(model)
    assert runs.scaled_base(None) == "base"


@pytest.mark.parametrize("name", BAD_VARIANTS)
def test_bad_variant_names_the_name_and_the_allowed_forms(name):
    with pytest.raises(ValueError) as e:
        runs.parse_variant(name)
    msg = str(e.value)
    assert repr(name) in msg and "hard, soft, fuzzy" in msg and "null" in msg and "gamma<number>" in msg
    assert "lever<" in msg and "_seed<k>" in msg and "scale<" in msg and "base-scale<" in msg


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model_names_the_name_and_the_allowed_forms(name):
    with pytest.raises(ValueError) as e:
        runs.parse_model(name)
    assert repr(name) in str(e.value) and "<variant>_seed<k>" in str(e.value)
    with pytest.raises(ValueError):
        runs.method_of(name)


def test_bad_dataclass_fields_are_rejected():
    for kwargs in ({"kind": "warm"}, {"kind": "soft", "tag": "nul"}, {"kind": "soft", "tag": "-null"}):
        with pytest.raises(ValueError, match="bad variant"):
            Variant(**kwargs)
    for args in ((Variant("soft"), None), (None, 0), (Variant("soft"), -1), (Variant("soft"), 0, "d192"),
                 (None, None, "d-192"), (None, None, "")):
        with pytest.raises(ValueError, match="bad model"):
            Model(*args)


def test_wildcard_regexes_accept_exactly_what_the_parser_accepts():
    for name in list(VARIANTS) + BAD_VARIANTS:
        ok = name in VARIANTS
        assert bool(re.fullmatch(runs.VARIANT_RE, name)) == ok, name
    models = ["base", "base-scaled192", "base-scaleXL"] + [f"{v}_seed{s}" for v in VARIANTS for s in (0, 7, 10)]
    for name in models + BAD_MODELS:
        assert bool(re.fullmatch(runs.MODEL_RE, name)) == (name in models), name
    # Snakemake wraps a constraint as (?P<name>...): the top-level alternatives stay inside the group
    assert re.fullmatch(rf"eval/(?P<model>{runs.MODEL_RE})/x", "eval/soft-null_seed1/x")
    assert not re.fullmatch(rf"eval/(?P<model>{runs.MODEL_RE})/x", "eval/base_seed1/x")
    assert re.fullmatch(rf"eval/(?P<model>{runs.MODEL_RE})/x", "eval/base-scaled192/x")
    for name in ("d192", "XL", "7"):
        assert re.fullmatch(runs.SCALE_RE, name) and re.fullmatch(runs.BASE_RE, f"base-scale{name}")
    for name in ("", "d-1", "d_1", "d 1"):
        assert not re.fullmatch(runs.SCALE_RE, name)


def test_kinds_are_the_schemas_kinds():
    """Adding a kind to runs.KINDS names its runs; the config schema must allow it in train.modes too."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert tuple(schema["$defs"]["kind"]["enum"]) == runs.KINDS


def test_scale_names_are_the_schemas_scale_names():
    """A name that study.scale.bases accepts must make a valid run name, and the other way round."""
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    pattern = schema["properties"]["study"]["properties"]["scale"]["properties"]["bases"]["propertyNames"]["pattern"]
    assert pattern == f"^{runs.SCALE_RE}$"


def test_module_is_torch_free():
    code = ("import sys; import softcot.runs; "
            "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'yaml', 'numpy') "
            "or (m.startswith('softcot.') and m != 'softcot.runs')]; print(heavy); sys.exit(bool(heavy))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
