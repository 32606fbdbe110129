"""softcot.config: YAML + flags + key=value overrides into typed dataclasses, and errors that name the file
and the key. Checked on small dataclasses of the test's own, so that only the loader is under test."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml

from softcot.config import ConfigError, apply_overrides, from_dict, load_config, load_yaml, merge, read_yaml, require


@dataclass
class Inner:
    size: int = 1
    name: str = "a"
    rate: float = 0.5

    def validate(self, prefix: str = "") -> None:
        require(self.size >= 1, prefix + "size", f"got {self.size}; must be >= 1")


def _inner_default() -> Inner:
    return Inner(size=9, name="outer's own")


@dataclass
class Outer:
    steps: int = 10
    kind: Literal["x", "y"] = "x"
    tags: list[str] = field(default_factory=list)
    limit: int | None = None
    inner: Inner = field(default_factory=Inner)
    tuned: Inner = field(default_factory=_inner_default)
    flag: bool = False


def test_file_then_flags_then_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 1\nkind: y\ninner:\n  size: 2\n  name: from-file\n")
    cfg = load_config(Outer, f, ["inner.size=4", "limit=7"], flags={"steps": 3, "inner": {"size": 3, "rate": 2.0}})
    assert cfg.steps == 3                                     # a flag beats the file
    assert cfg.inner.size == 4                                # an override beats a flag
    assert cfg.inner.name == "from-file"                      # a flag section merges into the file's section
    assert cfg.inner.rate == 2.0 and cfg.kind == "y" and cfg.limit == 7
    assert load_config(Outer, f).steps == 1
    assert load_config(Outer, None, ["steps=5"]) == Outer(steps=5)


def test_section_reads_one_part_of_the_file(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  steps: 2\nother:\n  bogus: 1\n")
    assert load_config(Outer, f, section="train").steps == 2
    assert load_config(Outer, f, section="missing") == Outer()


def test_errors_name_the_file_and_the_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("inner:\n  size: 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(f))}: inner\.size: got 0; must be >= 1$"):
        load_config(Outer, f)
    with pytest.raises(ConfigError, match=r"^inner\.size: got 0"):
        load_config(Outer, None, ["inner.size=0"])
    f.write_text("stpes: 3\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(f))}: stpes: unknown key; allowed keys here: .*\bsteps\b"):
        load_config(Outer, f)


@pytest.mark.parametrize("data,key", [
    ({"steps": "many"}, "steps"),
    ({"steps": True}, "steps"),              # a bool is not an integer
    ({"steps": 1.5}, "steps"),
    ({"kind": "z"}, "kind"),
    ({"tags": "a"}, "tags"),
    ({"tags": ["a", 2]}, r"tags\[1\]"),
    ({"limit": "all"}, "limit"),
    ({"inner": 3}, "inner"),
    ({"inner": {"sise": 2}}, r"inner\.sise"),
    ({"inner": {"rate": "fast"}}, r"inner\.rate"),
    ({"flag": "yes"}, "flag"),
])
def test_wrong_types_name_the_key(data, key):
    with pytest.raises(ConfigError, match=rf"^{key}: "):
        from_dict(Outer, data)


def test_coercions():
    cfg = from_dict(Outer, {"inner": {"rate": 2}, "limit": None, "tags": ("a", "b")})
    assert cfg.inner.rate == 2.0 and isinstance(cfg.inner.rate, float)
    assert cfg.limit is None and cfg.tags == ["a", "b"]


def test_a_partial_section_keeps_the_fields_own_default():
    cfg = from_dict(Outer, {"inner": {"name": "b"}, "tuned": {"name": "c"}})
    assert cfg.inner == Inner(size=1, name="b")               # Inner's defaults
    assert cfg.tuned == Inner(size=9, name="c")               # the field's default_factory, not Inner()


def test_overrides_are_parsed_as_yaml():
    data = apply_overrides({"a": {"b": 1}}, ["a.c=[1, 2]", "lr=2e-5", "big=1e3", "none=null", "on=true", "s=x=y",
                                             "deep.er.key=3"])
    assert data == {"a": {"b": 1, "c": [1, 2]}, "lr": 2e-5, "big": 1000.0, "none": None, "on": True, "s": "x=y",
                    "deep": {"er": {"key": 3}}}
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["steps"])
    with pytest.raises(ConfigError, match="a is not a section"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_yaml_floats_follow_yaml_1_2():
    assert load_yaml("lr: 2e-5\nx: 1e3\ny: 1.5\nz: .5\nn: 10\ns: '2e-5'\n") == {
        "lr": 2e-5, "x": 1000.0, "y": 1.5, "z": 0.5, "n": 10, "s": "2e-5"}
    with pytest.raises(yaml.YAMLError, match="python/object"):
        load_yaml("!!python/object:os.system {}")          # safe loading: no Python objects


def test_merge_updates_nested_mappings_in_place():
    base = {"a": {"x": 1, "y": 2}, "b": 1, "c": {"k": 1}}
    out = merge(base, {"a": {"y": 3, "z": 4}, "b": {"new": 1}, "c": 5, "d": 6})
    assert out is base
    assert base == {"a": {"x": 1, "y": 3, "z": 4}, "b": {"new": 1}, "c": 5, "d": 6}


def test_read_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: the top level must be a mapping"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}


def test_require_raises_naming_the_key():
    require(True, "k", "never")
    with pytest.raises(ConfigError, match=r"^a\.b: must be positive$"):
        require(False, "a.b", "must be positive")
