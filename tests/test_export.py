"""softcot.export: a trained run as a plain Hugging Face checkpoint whose model card states the run's actual
settings ("train soft, deploy hard"); its CLI error is in tests/test_cli.py."""
from __future__ import annotations

import json
import re
import sys

import pytest
import yaml

from softcot import __version__
from softcot.config import load_yaml
from softcot.export import export
from softcot.io import DataError
from softcot.schema import OptimConfig
from softcot.trainer import train
from tests.helpers import card_table, parity_reward, tiny_train_cfg


@pytest.fixture(scope="module")
def run_dir(train_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "run"
    cfg = tiny_train_cfg(train_base, out, "fuzzy", steps=2, seed=7, prompts_per_step=2, group_size=4,
                         optim=OptimConfig(lr=2.5e-3, warmup_steps=0))
    train(cfg, reward_fn=parity_reward)
    return out


def test_export_loads_with_plain_transformers(run_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = export(run_dir, tmp_path / "hf")
    assert list(out.glob("*.safetensors")) and (out / "generation_config.json").exists()
    assert not (out / "best.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(["Q: 1+1\nA:"], return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 5


def test_model_card_states_the_runs_settings(run_dir, tmp_path):
    out = export(run_dir, tmp_path / "hf")
    card = (out / "README.md").read_text()
    rows = card_table(card)
    assert rows["training CoT mode"] == "fuzzy"
    assert float(rows["CoT temperature tau"]) == 1e-4                       # fuzzy's default tau
    assert float(rows["noise scale gamma (sigma = gamma * rms(E))"]) == 0.33
    assert rows["seed"] == "7"
    assert float(rows["learning rate"]) == 2.5e-3
    assert rows["steps"] == "2"
    assert rows["prompts x rollouts per step"] == "2 x 4"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert rows["best greedy validation pass@1"] == f"{summary['best_val_greedy_pass1']} (step {summary['best_step']})"
    assert rows["base model"].strip("`").endswith("model")
    from softcot.provenance import provenance
    assert rows["code commit"].strip("`").split(" (")[0] == summary["code_commit"] == provenance()["code_commit"]
    meta = _front_matter(card)
    assert meta["tags"] == ["softcot", "reinforcement-learning", "chain-of-thought", "fuzzy-tokens"]
    assert f"**softcot** {__version__}" in card
    # The exact config block is the run's resolved config.
    block = re.search(r"## Exact training config\n\n```yaml\n(.*)```", card, re.S).group(1)
    assert load_yaml(block) == load_yaml((run_dir / "config.yaml").read_text())
    meta = json.loads((out / "softcot_training.json").read_text())
    assert meta["config"]["seed"] == 7 and meta["summary"] == summary and meta["softcot_version"] == __version__


def _front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _eval_summary(path, pass1=0.25, pass4=0.5):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": {"data": "nowhere.jsonl"}, "settings": {
        "hard_greedy": {"pass1": pass1, "pass_at_k": {"1": pass1}},
        "hard_sample": {"pass1": 0.2, "pass_at_k": {"1": 0.2, "2": 0.4, "4": pass4}}}}))
    return path


@pytest.mark.parametrize("hub", [True, False], ids=["huggingface_hub", "plain-yaml"])
def test_model_card_metadata(run_dir, tmp_path, monkeypatch, hub):
    """base_model, datasets, license and the evaluation results (validation and each --eval summary) sit in the card's
    YAML metadata, in the Hub's model-index layout, with or without huggingface_hub."""
    if not hub:
        monkeypatch.setitem(sys.modules, "huggingface_hub", None)          # `import huggingface_hub` fails
    ev = _eval_summary(tmp_path / "eval" / "test" / "summary.json")
    out = export(run_dir, tmp_path / "hf", [ev])
    meta = _front_matter((out / "README.md").read_text())
    cfg = load_yaml((run_dir / "config.yaml").read_text())
    assert meta["base_model"] == cfg["model"]["name_or_path"]
    assert meta["datasets"] and meta["license"] == "other" and meta["license_name"] == "same-as-base-model"
    assert meta["library_name"] == "transformers"
    (index,) = meta["model-index"]
    assert index["name"] == "softcot-fuzzy-seed7"
    got = {(r["dataset"]["name"], m["type"]): m["value"] for r in index["results"] for m in r["metrics"]}
    best = json.loads((run_dir / "summary.json").read_text())["best_val_greedy_pass1"]
    val = next(k for k in got if k[0].endswith("(validation)"))
    assert got[val] == pytest.approx(100 * best, abs=0.01)
    assert got[("test", "pass@1")] == 25.0 and got[("test", "pass@4")] == 50.0
    lic = export(run_dir, tmp_path / "hf2", license={"license": "apache-2.0"})
    assert _front_matter((lic / "README.md").read_text())["license"] == "apache-2.0"


def test_export_names_a_missing_eval_summary(run_dir, tmp_path):
    with pytest.raises(DataError, match="no evaluation summary here"):
        export(run_dir, tmp_path / "hf", [tmp_path / "nope" / "summary.json"])


def test_export_without_a_model_is_a_data_error(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    with pytest.raises(DataError, match="no trained model here"):
        export(tmp_path / "run", tmp_path / "hf")
    (tmp_path / "run" / "model" / "config.json").write_text("{}")
    (tmp_path / "run" / "model" / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(DataError, match="no .safetensors weights"):
        export(tmp_path / "run", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
