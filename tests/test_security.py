"""Security and data-hygiene properties, checked on the source and on real faults."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from softcot.config import ConfigError
from softcot.modeling import ModelConfig
from softcot.rewards import JudgeError, score_completion
from softcot.trainer import load_records

SRC = Path(__file__).resolve().parents[1] / "softcot"
FILES = {p: p.read_text() for p in SRC.rglob("*.py")}


def test_every_torch_load_is_weights_only():
    for path, text in FILES.items():
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{path}: {m.group(0)}"


def test_no_remote_code_or_pickled_weights_by_default():
    assert ModelConfig().trust_remote_code is False
    for path, text in FILES.items():
        assert "trust_remote_code=True" not in text, path
    modeling = (SRC / "modeling.py").read_text()
    assert 'kw["use_safetensors"] = True' in modeling


def test_no_shell_strings_built_from_config():
    for path, text in FILES.items():
        assert "shell=True" not in text and "os.system(" not in text, path


def test_workflow_quotes_config_strings():
    rules = Path(__file__).resolve().parents[1] / "workflow" / "rules"
    for smk in rules.glob("*.smk"):
        for line in smk.read_text().splitlines():
            # every path or config value substituted into a shell command is quoted with :q
            for field in re.findall(r"\{(input|output|params)\.(\w+)\}", line):
                if field[1] not in ("args", "overrides", "gguf", "data"):
                    pytest.fail(f"{smk.name}: unquoted {{{field[0]}.{field[1]}}} in: {line.strip()}")


def test_malformed_rows_name_file_and_row(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n"
                 + "{not json\n")
    with pytest.raises(Exception, match=r"train.jsonl.*(row|line) [23]"):
        load_records(str(f))
    f.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n")
    with pytest.raises(ConfigError, match=r"train.jsonl, row 2: missing or empty answer"):
        load_records(str(f))
    rows = load_records(str(f), on_bad_row="skip")
    assert len(rows) == 1 and rows.skipped == 1


def test_a_crashing_judge_is_no_reward_not_zero(monkeypatch):
    import softcot.rewards as r

    def boom(pred, gold):
        raise JudgeError("simulated crash")
    monkeypatch.setattr(r, "judge", boom)
    assert score_completion("so \\boxed{4}", "4") is None
    assert score_completion("no box at all", "4") == 0.0
