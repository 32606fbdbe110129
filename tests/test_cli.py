"""softcot.cli: every sub-command turns a bad config value or input file into exit code 2 and one line on
stderr, `softcot <cmd>: config|data error: ...`, naming the key or the file; validate-config checks a config
without running anything. Two sub-commands run as real processes (`python -m softcot.cli`), the rest in
process through softcot.cli.main."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from softcot import cli
from tests.helpers import FIXTURES, save_tiny, write_records


def one_line(err: str, cmd: str, kind: str) -> str:
    """The single stderr line of a failed sub-command, checked for its prefix."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"softcot {cmd}: {kind} error: "), err
    return lines[0]


def run(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    return save_tiny(d / "model"), write_records(d / "problems.jsonl", 4)


# --------------------------------------------------------------------------- real processes

def test_train_bad_key_in_a_subprocess(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"mode": {"kind": "lukewarm"}, "output_dir": str(tmp_path / "out")}))
    p = subprocess.run([sys.executable, "-m", "softcot.cli", "train", "--config", str(cfg)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2
    line = one_line(p.stderr, "train", "config")
    assert f"{cfg}: mode.kind: got 'lukewarm'" in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.ckpt").exists()


def test_prepare_data_malformed_row_in_a_subprocess(tmp_path):
    bad = FIXTURES / "hub" / "malformed" / "gsm8k_test.jsonl"
    out = tmp_path / "gsm.jsonl"
    p = subprocess.run([sys.executable, "-m", "softcot.cli", "prepare-data", "--benchmark", "gsm8k", "--path", str(bad),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    line = one_line(p.stderr, "prepare-data", "data")
    assert f"{bad}, row 2:" in line and "'answer'" in line
    assert not out.exists()


# --------------------------------------------------------------------------- in process

def test_evaluate_unknown_setting_and_bad_ks(capsys, tiny, tmp_path):
    model, data = tiny
    rc, err = run(capsys, "evaluate", "--model", str(model), "--data", str(data), "--settings", "soft_beam",
                  "--out", str(tmp_path / "o"))
    assert rc == 2 and "settings: unknown setting 'soft_beam'" in one_line(err, "evaluate", "config")
    rc, err = run(capsys, "evaluate", "--model", str(model), "--data", str(data), "--n", "4", "ks=[8]",
                  "--out", str(tmp_path / "o"))
    assert rc == 2 and "ks: k = 8 is outside 1..n_samples (4)" in one_line(err, "evaluate", "config")
    rc, err = run(capsys, "evaluate", "--model", str(model), "--data", str(tmp_path / "none.jsonl"),
                  "--out", str(tmp_path / "o"))
    assert rc == 2 and f"data: '{tmp_path / 'none.jsonl'}' does not exist" in one_line(err, "evaluate", "config")
    assert not (tmp_path / "o").exists()


def test_evaluate_malformed_problem_file(capsys, tiny, tmp_path):
    model, _ = tiny
    data = tmp_path / "p.jsonl"
    data.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n')
    rc, err = run(capsys, "evaluate", "--model", str(model), "--data", str(data), "--settings", "hard_greedy",
                  "--out", str(tmp_path / "o"), "--no-progress")
    assert rc == 2 and f"{data}, row 2: missing or empty answer" in one_line(err, "evaluate", "data")


def test_ood_bad_limit_and_model_spec(capsys, tiny, tmp_path):
    model, _ = tiny
    data = tmp_path / "mc.jsonl"
    data.write_text('{"question": "q", "choices": ["a", "b"], "label": 0}\n')
    rc, err = run(capsys, "ood", "--model", f"base={model}", "--data", f"toy={data}", "--limit", "0",
                  "--out", str(tmp_path / "o.json"))
    assert rc == 2 and "limit: got 0" in one_line(err, "ood", "config")
    rc, err = run(capsys, "ood", "--model", str(model), "--data", f"toy={data}", "--out", str(tmp_path / "o.json"))
    assert rc == 2 and "--model" in one_line(err, "ood", "config") and "NAME=VALUE" in err
    rc, err = run(capsys, "ood", "--model", f"base={model}", "--data", f"toy={tmp_path / 'none.jsonl'}",
                  "--out", str(tmp_path / "o.json"))
    assert rc == 2 and "none.jsonl does not exist" in one_line(err, "ood", "data")
    assert not (tmp_path / "o.json").exists()


def test_toy_data_unknown_key(capsys, tmp_path):
    cfg = tmp_path / "toy.yaml"
    cfg.write_text("seed: 1\nn_trian: 5\n")
    rc, err = run(capsys, "toy-data", "--config", str(cfg), "--out", str(tmp_path / "x"))
    line = one_line(err, "toy-data", "config")
    assert rc == 2 and f"{cfg}: n_trian: unknown key" in line and ", n_train," in line
    rc, err = run(capsys, "toy-data", "--out", str(tmp_path / "x"), "shortcut_rate=1.0")
    assert rc == 2 and "shortcut_rate: got 1.0" in one_line(err, "toy-data", "config")
    assert not (tmp_path / "x").exists()


def test_pretrain_unknown_key_and_missing_data(capsys, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("hidden_size: 32\nlearning_rate: 0.1\n")
    args = ["--out", str(tmp_path / "o"), "--ckpt-dir", str(tmp_path / "ck")]
    rc, err = run(capsys, "pretrain", "--data", str(tmp_path), "--config", str(cfg), *args)
    line = one_line(err, "pretrain", "config")
    assert rc == 2 and f"{cfg}: learning_rate: unknown key" in line and ", lr," in line
    rc, err = run(capsys, "pretrain", "--data", str(tmp_path / "nodata"), *args, "steps=2")
    assert rc == 2 and f"{tmp_path / 'nodata' / 'pretrain.jsonl'} not found" in one_line(err, "pretrain", "data")
    rc, err = run(capsys, "pretrain", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--ckpt-dir",
                  str(tmp_path / "o"))
    assert rc == 2 and "--ckpt-dir must differ from --out" in one_line(err, "pretrain", "config")
    assert not (tmp_path / "o").exists()


def test_diagnose_missing_data_and_bad_mode(capsys, tiny, tmp_path):
    model, data = tiny
    rc, err = run(capsys, "diagnose", "--model", str(model), "--data", str(tmp_path / "none.jsonl"),
                  "--out", str(tmp_path / "d.json"))
    assert rc == 2 and "data: " in one_line(err, "diagnose", "config") and "none.jsonl" in err
    rc, err = run(capsys, "diagnose", "--model", str(model), "--data", str(data), "--modes", "soft", "warm",
                  "--out", str(tmp_path / "d.json"))
    assert rc == 2 and "modes: unknown mode 'warm'" in one_line(err, "diagnose", "config")
    rc, err = run(capsys, "diagnose", "--model", str(model), "--data", str(data), "group=1",
                  "--out", str(tmp_path / "d.json"))
    assert rc == 2 and "group: got 1" in one_line(err, "diagnose", "config")
    assert not (tmp_path / "d.json").exists()


def test_export_without_a_trained_model(capsys, tmp_path):
    rc, err = run(capsys, "export", "--run", str(tmp_path / "run"), "--out", str(tmp_path / "hf"))
    assert rc == 2 and f"{tmp_path / 'run' / 'model'}: no trained model here" in one_line(err, "export", "data")
    assert not (tmp_path / "hf").exists()


def test_generate_unknown_setting_and_template(capsys, tiny):
    model, _ = tiny
    rc, err = run(capsys, "generate", "--model", str(model), "--settings", "hard_beam", "3+4")
    assert rc == 2 and "--settings: unknown ['hard_beam']" in one_line(err, "generate", "config")
    rc, err = run(capsys, "generate", "--model", str(model), "--template", "no placeholder", "3+4")
    assert rc == 2 and "--template: must contain {question}" in one_line(err, "generate", "config")
    rc, err = run(capsys, "generate", "--model", "/nonexistent/model", "3+4")
    line = one_line(err, "generate", "config")
    assert rc == 2 and "--model: name_or_path: '/nonexistent/model' does not exist" in line


@pytest.mark.parametrize("kind,text,key", [
    ("train", "steps: 0\n", "steps"),
    ("eval", "data: /nonexistent.jsonl\nmodel: {name_or_path: org/name}\n", "data"),
    ("pretrain", "lr: fast\n", "lr"),
    ("ood", "models: {base: m}\n", "data"),
    ("diagnose", "model: m\n", "data"),
])
def test_validate_config_names_the_key(capsys, tmp_path, kind, text, key):
    f = tmp_path / "c.yaml"
    f.write_text(text)
    rc, err = run(capsys, "validate-config", "--kind", kind, str(f))
    assert rc == 2 and f"{f}: {key}: " in one_line(err, "validate-config", "config")


def test_validate_config_rejects_a_train_config_without_model_or_data(capsys, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 5\nmode: {kind: soft}\n")
    rc, err = run(capsys, "validate-config", "--kind", "train", str(f))
    assert rc == 2 and "model.name_or_path: required" in one_line(err, "validate-config", "config")


def test_validate_config_accepts_a_good_file_and_applies_overrides(capsys, tmp_path, tiny):
    model, data = tiny
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"steps": 5, "mode": {"kind": "soft"}, "model": {"name_or_path": str(model)},
                                 "data": {"train": str(data)}}))
    capsys.readouterr()
    assert cli.main(["validate-config", "--kind", "train", str(f)]) == 0
    assert capsys.readouterr().out.strip() == f"{f}: ok"
    rc, err = run(capsys, "validate-config", "--kind", "train", str(f), "mode.kind=warm")
    assert rc == 2 and "mode.kind: got 'warm'" in one_line(err, "validate-config", "config")
    rc, err = run(capsys, "validate-config", "--kind", "train", str(tmp_path / "none.yaml"))
    assert rc == 2 and "none.yaml: config file not found" in one_line(err, "validate-config", "config")


def test_help_version_and_unknown_command(capsys):
    assert cli.main([]) == 0 and "softcot train" in capsys.readouterr().out
    from softcot import __version__
    assert cli.main(["--version"]) == 0 and capsys.readouterr().out.strip() == __version__
    rc, err = run(capsys, "trian")
    assert rc == 2 and err.count("\n") == 1 and "unknown command 'trian'" in err and "train" in err
