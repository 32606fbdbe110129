"""softcot.ood: several models x benchmarks side by side, the Markdown table, and the CLI's flags, config
file and key=value overrides (its errors are in tests/test_cli.py)."""
from __future__ import annotations

import json

import pytest
import yaml

from softcot.io import write_jsonl
from softcot.ood import as_model_config, main, markdown_table, ood
from softcot.config import ConfigError
from softcot.schema import ModelConfig, OODConfig
from tests.helpers import MC_RECORDS


@pytest.fixture(scope="module")
def saved(mc_tok, sure_mc_model, random_mc_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("ood")
    dirs = {}
    for name, m in (("base", random_mc_model), ("tuned", sure_mc_model)):
        dirs[name] = root / name
        m.save_pretrained(dirs[name])
        mc_tok.save_pretrained(dirs[name])
    data = root / "toy.jsonl"
    write_jsonl(data, MC_RECORDS)
    return dirs, data


def test_ood_scores_every_model_on_every_benchmark(saved):
    dirs, data = saved
    res = ood({n: ModelConfig(name_or_path=str(d), add_special_tokens=False) for n, d in dirs.items()},
              {"toy": data, "again": data}, batch_size=4, progress=False)
    tuned, base = res["models"]["tuned"]["benchmarks"], res["models"]["base"]["benchmarks"]
    assert tuned["toy"]["acc"] == 1.0 and tuned["toy"]["n"] == len(MC_RECORDS)
    assert base["toy"]["nll"] > tuned["toy"]["nll"]
    assert tuned["again"] == tuned["toy"] and base["again"] == base["toy"]
    assert res["n"] == {"toy": 4, "again": 4}
    assert [i["id"] for i in res["items"]["tuned"]["toy"]] == [r["id"] for r in MC_RECORDS]
    md = markdown_table(res)
    head, sep, *rows = md.splitlines()
    assert head == ("| model | toy acc | toy acc_norm | toy NLL | again acc | again acc_norm | again NLL |")
    assert rows[1].startswith("| tuned | 1.000 | 1.000 | ") and f"{tuned['toy']['nll']:.3f}" in rows[1]
    assert "n = toy: 4, again: 4" in md


def test_ood_cli_side_by_side(saved, tmp_path, capsys):
    dirs, data = saved
    out = tmp_path / "ood.json"
    assert main(["--model", f"base={dirs['base']}", "--model", f"tuned={dirs['tuned']}", "--data", f"toy={data}",
                 "--limit", "3", "--out", str(out), "--no-progress"]) == 0
    saved_res = json.loads(out.read_text())
    assert saved_res["n"] == {"toy": 3} and set(saved_res["models"]) == {"base", "tuned"}
    assert saved_res["models"]["tuned"]["model"] == str(dirs["tuned"])
    md = out.with_suffix(".md").read_text()
    assert "| base |" in md and "| tuned |" in md and "toy acc_norm" in md
    assert md in capsys.readouterr().out


def test_ood_cli_config_file_flags_and_overrides(saved, tmp_path):
    """A config file gives the models and data; a flag adds a model; key=value overrides win over both."""
    dirs, data = saved
    cfg = tmp_path / "ood.yaml"
    cfg.write_text(yaml.safe_dump({"models": {"base": str(dirs["base"])}, "data": {"toy": str(data)}, "limit": 3,
                                   "batch_size": 1}))
    out = tmp_path / "ood.json"
    assert main(["--config", str(cfg), "--model", f"tuned={dirs['tuned']}", "limit=2", "batch_size=2",
                 "--out", str(out), "--no-progress"]) == 0
    res = json.loads(out.read_text())
    assert res["n"] == {"toy": 2} and res["limit"] == 2
    assert set(res["models"]) == {"base", "tuned"}
    assert res["models"]["tuned"]["benchmarks"]["toy"]["acc"] == 1.0


def test_as_model_config():
    m = ModelConfig(name_or_path="x", add_special_tokens=False)
    assert as_model_config(m) is m
    assert as_model_config("org/name") == ModelConfig(name_or_path="org/name")


def test_revision_reaches_the_named_model_and_an_unknown_name_is_refused(saved, tmp_path):
    cfg = OODConfig(models={"base": "org/name", "tuned": "out/model"}, data={"toy": "x.jsonl"},
                    revision={"base": "0123abc"})
    models = cfg.model_configs()
    assert models["base"].revision == "0123abc" and models["tuned"].revision is None
    dirs, data = saved
    with pytest.raises(ConfigError, match=r"revision.*\['other'\] names no model"):
        main(["--model", f"base={dirs['base']}", "--revision", "other=main", "--data", f"toy={data}",
              "--out", str(tmp_path / "ood.json"), "--no-progress"])
