"""softcot.pretrain: the embedded default's tiny base model: a loadable pre-trained model with its base
evaluation, exact resume after an interruption and after kill -9, and config errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from softcot import pretrain as pretrain_mod
from softcot.config import ConfigError, from_dict
from softcot.io import read_jsonl
from softcot.pretrain import pretrain
from softcot.schema import PretrainConfig
from softcot.toy import ToyConfig, format_prompt, make_splits, write_splits
from tests.helpers import REPO

SMALL = dict(n_pretrain=400, n_train=100, n_val=16, n_test=16, n_test_hard=16, n_ood=20, n_ood_train=60)
TINY = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, batch_size=8, lr=3e-3, warmup=2,
            ckpt_every=3, eval_every=1000, n_eval=4, max_new_tokens=24, threads=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy") / "data"
    write_splits(make_splits(ToyConfig(seed=0, **SMALL)), out)
    return out


def _cfg(**kw) -> PretrainConfig:
    return from_dict(PretrainConfig, {**TINY, **kw})


def test_tiny_pretrain_writes_loadable_model(data_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "base"
    res = pretrain(_cfg(steps=30), data_dir, out, tmp_path / "ck", progress=False)
    for f in ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
              "pretrain_metrics.jsonl", "base_eval.json", "pretrain_config.json"):
        assert (out / f).exists(), f
    ev = json.loads((out / "base_eval.json").read_text())
    assert ev == json.loads(json.dumps(res))
    for split in ("val", "test", "test_hard"):
        assert 0.0 <= ev[split]["greedy_acc"] <= 1.0 and "sample_acc" in ev[split]
    assert set(ev["ood"]) == {"acc", "acc_norm", "nll", "n"} and ev["ood"]["n"] == SMALL["n_ood"]
    assert 0.0 <= ev["ood"]["acc"] <= 1.0 and 0.0 <= ev["ood"]["acc_norm"] <= 1.0 and ev["ood"]["nll"] > 0
    rows = read_jsonl(out / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 31))
    assert all({"step", "loss", "lr", "seconds"} <= set(r) for r in rows)
    first, last = sum(r["loss"] for r in rows[:3]) / 3, sum(r["loss"] for r in rows[-3:]) / 3
    assert last < first - 0.5, (first, last)

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.tie_word_embeddings and model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id == 0
    enc = tok([format_prompt("1+2"), format_prompt("3+4-5+1")], return_tensors="pt", padding=True)
    gen = model.generate(**enc, max_new_tokens=8, do_sample=False)
    assert gen.shape[0] == 2 and gen.shape[1] > enc["input_ids"].shape[1]
    # Left-padded batched greedy decoding matches decoding the row alone.
    alone = model.generate(**tok([format_prompt("1+2")], return_tensors="pt"), max_new_tokens=8, do_sample=False)
    n = enc["input_ids"].shape[1]
    assert tok.decode(gen[0, n:], skip_special_tokens=True) == tok.decode(alone[0, alone.shape[1] - (gen.shape[1] - n):],
                                                                          skip_special_tokens=True)


def _params(path: Path) -> dict[str, torch.Tensor]:
    from transformers import AutoModelForCausalLM

    return {k: v.detach().clone() for k, v in AutoModelForCausalLM.from_pretrained(path).state_dict().items()}


def _assert_same_weights(a: Path, b: Path) -> None:
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k


def test_resume_is_exact(data_dir, tmp_path):
    steps = 10
    cfg = _cfg(steps=steps, n_sample=0)
    pretrain(cfg, data_dir, tmp_path / "a", tmp_path / "ck_a", progress=False)
    # Interrupted at step 4 (between checkpoints 3 and 6: the resumed run restarts from step 3).
    assert pretrain(cfg, data_dir, tmp_path / "b", tmp_path / "ck_b", stop_at=3, progress=False) is None
    assert not (tmp_path / "b").exists()
    pretrain(_cfg(steps=steps, n_sample=0), data_dir, None, tmp_path / "ck_b", stop_at=4, progress=False)
    pretrain(_cfg(steps=steps, n_sample=0), data_dir, tmp_path / "b", tmp_path / "ck_b", progress=False)
    _assert_same_weights(tmp_path / "a", tmp_path / "b")
    ra, rb = read_jsonl(tmp_path / "a" / "pretrain_metrics.jsonl"), read_jsonl(tmp_path / "b" / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rb] == list(range(1, steps + 1))
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_resume_after_kill_9(data_dir, tmp_path):
    """The CLI, killed with SIGKILL mid-run and started again with the same command, ends with the weights
    of an uninterrupted run."""
    steps = 40
    sets = [f"{k}={v}" for k, v in {**TINY, "steps": steps, "ckpt_every": 2, "n_sample": 0}.items()]
    cmd = [sys.executable, "-m", "softcot.cli", "pretrain", "--data", str(data_dir), "--no-progress", *sets]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ck = tmp_path / "ck_kill"
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "killed"), "--ckpt-dir", str(ck)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (ck / "latest").exists() and (ck / "latest").read_text().strip() >= "step_000004":
            break
        time.sleep(0.05)
    was_running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert was_running, "the run finished before it could be killed; make it longer"
    assert not (tmp_path / "killed").exists()
    subprocess.run(cmd + ["--out", str(tmp_path / "killed"), "--ckpt-dir", str(ck)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    pretrain(_cfg(steps=steps, ckpt_every=2, n_sample=0), data_dir, tmp_path / "clean", tmp_path / "ck_clean",
             progress=False)
    _assert_same_weights(tmp_path / "killed", tmp_path / "clean")
    rk = read_jsonl(tmp_path / "killed" / "pretrain_metrics.jsonl")
    rc = read_jsonl(tmp_path / "clean" / "pretrain_metrics.jsonl")
    assert [r["step"] for r in rk] == list(range(1, steps + 1))   # rows after the last checkpoint were redone
    assert [r["loss"] for r in rk] == [r["loss"] for r in rc]


def test_pretrain_rejects_unknown_key_and_foreign_checkpoint(data_dir, tmp_path):
    cfg = tmp_path / "p.yaml"
    cfg.write_text("hidden_size: 32\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"learning_rate: unknown key; allowed keys here: .*\blr\b"):
        pretrain_mod.main(["--data", str(data_dir), "--config", str(cfg), "--out", str(tmp_path / "o"),
                           "--ckpt-dir", str(tmp_path / "ck")])
    assert not (tmp_path / "ck").exists()
    pretrain(_cfg(steps=3, n_sample=0), data_dir, None, tmp_path / "ck2", stop_at=3, progress=False)
    with pytest.raises(ConfigError, match="different config"):
        pretrain(_cfg(steps=3, n_sample=0, hidden_size=64), data_dir, None, tmp_path / "ck2", progress=False)
    with pytest.raises(ConfigError, match="--ckpt-dir must differ from --out"):
        pretrain(_cfg(steps=3), data_dir, tmp_path / "same", tmp_path / "same", progress=False)
