"""The trainer: learning on a toy reward, exact resume after SIGTERM and kill -9, export, bad configs."""
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
import yaml

from softcot.config import ConfigError, load_config
from softcot.modeling import ModelConfig
from softcot.modes import CoTMode
from softcot.rollout import RolloutConfig
from softcot.trainer import PREEMPTED_EXIT_CODE, DataConfig, OptimConfig, TrainConfig, train
from tests.helpers import PARITY_ROLLOUT, parity_reward, save_tiny, write_records


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    save_tiny(d / "model")
    write_records(d / "train.jsonl")
    write_records(d / "val.jsonl", 8)
    return d


def tiny_cfg(base: Path, out: Path, kind: str, **kw) -> TrainConfig:
    cfg = dict(model=ModelConfig(name_or_path=str(base / "model")), mode=CoTMode(kind),
               rollout=RolloutConfig(**PARITY_ROLLOUT),
               data=DataConfig(train=str(base / "train.jsonl"), prompt_template="Q: {question}\nA:"),
               optim=OptimConfig(lr=3e-3, warmup_steps=0, schedule="constant"),
               steps=50, prompts_per_step=4, group_size=8, rollout_batch=32, micro_batch=16,
               output_dir=str(out), save_every=10, eval_every=1000, seed=0)
    cfg.update(kw)
    return TrainConfig(**cfg)


def rewards_of(out: Path) -> list[float]:
    return [json.loads(l)["reward_mean"] for l in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_training_raises_the_reward_on_a_toy_task(base, tmp_path, kind):
    """The reward reads the sampled answer, which depends on the CoT inputs; a null control stays flat."""
    train(tiny_cfg(base, tmp_path / "rl", kind), reward_fn=parity_reward)
    train(tiny_cfg(base, tmp_path / "null", kind, shuffle_advantages=True), reward_fn=parity_reward)
    r, n = rewards_of(tmp_path / "rl"), rewards_of(tmp_path / "null")
    first, last, null_last = sum(r[:10]) / 10, sum(r[-10:]) / 10, sum(n[-10:]) / 10
    assert last > first + 8, f"{kind}: reward {first:.1f} -> {last:.1f}"
    assert last > null_last + 5, f"{kind}: {last:.1f} vs null control {null_last:.1f}"


def test_metrics_log_what_the_issue_asks_for(base, tmp_path):
    train(tiny_cfg(base, tmp_path / "r", "soft", steps=3, diagnostics_every=1), reward_fn=parity_reward)
    row = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[-1])
    for key in ("reward_mean", "reward_std", "frac_equal_groups", "cot_len", "answer_len", "grad_norm",
                "logp_cot", "logp_answer", "grad_norm_cot", "grad_norm_answer", "nonfinite_skipped", "lr"):
        assert key in row and row[key] == row[key], key
    timing = json.loads((tmp_path / "r" / "timing.jsonl").read_text().splitlines()[-1])
    assert {"rollout_s", "score_fwd_s", "backward_s", "optim_s"} <= set(timing)


def write_cli_config(base: Path, path: Path, out: Path, **kw) -> Path:
    cfg = {"model": {"name_or_path": str(base / "model")}, "mode": {"kind": "soft"},
           "rollout": PARITY_ROLLOUT, "reward": "tests.helpers:parity_reward",
           "data": {"train": str(base / "train.jsonl"), "val": str(base / "val.jsonl"), "val_size": 4,
                    "prompt_template": "Q: {question}\nA:"},
           "optim": {"lr": 3e-3, "warmup_steps": 2}, "steps": 12, "prompts_per_step": 2, "group_size": 4,
           "rollout_batch": 8, "micro_batch": 4, "save_every": 1, "eval_every": 4, "output_dir": str(out),
           "threads": 1, "seed": 3}
    cfg.update(kw)
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_cli(cfg: Path, kill_after_step: int | None = None, sig=signal.SIGKILL) -> int:
    cmd = [sys.executable, "-m", "softcot.cli", "train", "--config", str(cfg)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after_step is not None:
        out = Path(yaml.safe_load(cfg.read_text())["output_dir"] + ".ckpt") / "metrics.jsonl"
        deadline = time.time() + 240
        while time.time() < deadline and p.poll() is None:
            if out.exists() and len(out.read_text().splitlines()) >= kill_after_step:
                p.send_signal(sig)
                break
            time.sleep(0.05)
    _, err = p.communicate(timeout=600)
    if p.returncode not in (0, PREEMPTED_EXIT_CODE, -signal.SIGKILL):
        raise AssertionError(err.decode()[-3000:])
    return p.returncode


def model_tensors(out: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(out / "model" / "model.safetensors"))


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGUSR1], ids=["kill9", "sigterm", "sigusr1"])
def test_interrupted_run_resumes_to_identical_results(base, tmp_path, sig):
    ref = run_cli(write_cli_config(base, tmp_path / "a.yaml", tmp_path / "a"))
    assert ref == 0
    cfg = write_cli_config(base, tmp_path / "b.yaml", tmp_path / "b")
    rc = run_cli(cfg, kill_after_step=5, sig=sig)
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else PREEMPTED_EXIT_CODE)
    assert not (tmp_path / "b").exists(), "no output may exist before the run has finished"
    assert run_cli(cfg) == 0
    a, b = model_tensors(tmp_path / "a"), model_tensors(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("metrics.jsonl", "val.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_same_seed_same_bytes_other_seed_differs(base, tmp_path):
    for name, seed in (("x", 3), ("y", 3), ("z", 4)):
        run_cli(write_cli_config(base, tmp_path / f"{name}.yaml", tmp_path / name, seed=seed, steps=4))
    m = {n: (tmp_path / n / "metrics.jsonl").read_bytes() for n in "xyz"}
    assert m["x"] == m["y"] and m["x"] != m["z"]


def test_export_loads_with_plain_transformers(base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from softcot.export import export
    train(tiny_cfg(base, tmp_path / "run", "fuzzy", steps=2), reward_fn=parity_reward)
    out = export(tmp_path / "run", tmp_path / "hf")
    card = (out / "README.md").read_text()
    assert "fuzzy" in card and "seed" in card and "softcot" in card and "lr" in card or "learning rate" in card
    assert list(out.glob("*.safetensors")) and (out / "generation_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok(["Q: 1+1\nA:"], return_tensors="pt")
    gen = model.generate(**enc, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    assert gen.shape[1] == enc["input_ids"].shape[1] + 5


def test_nonfinite_steps_are_skipped_then_stop_the_run(base, tmp_path):
    def nan_reward(prompts, completions, **_):
        return [float("nan") if i % 2 else 1.0 for i in range(len(completions))]
    cfg = tiny_cfg(base, tmp_path / "nan", "hard", steps=20, max_nonfinite_steps=3, save_every=1)
    with pytest.raises(RuntimeError, match="non-finite"):
        train(cfg, reward_fn=nan_reward)
    ck = cfg.checkpoint_dir
    rows = [json.loads(l) for l in (ck / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_skipped"] for r in rows] == [1, 2, 3, 4]
    assert not list(ck.glob("step_*")), "no checkpoint may be written from a corrupted state"


BAD = [
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
]


@pytest.mark.parametrize("patch,key", BAD, ids=[k for _, k in BAD])
def test_bad_configs_are_rejected_naming_the_key(base, tmp_path, patch, key):
    raw = yaml.safe_load(write_cli_config(base, tmp_path / "c.yaml", tmp_path / "o").read_text())
    for k, v in patch.items():
        raw[k] = {**raw[k], **v} if isinstance(v, dict) and isinstance(raw.get(k), dict) else v
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=key.split(".")[-1]):
        load_config(TrainConfig, tmp_path / "c.yaml")
    p = subprocess.run([sys.executable, "-m", "softcot.cli", "train", "--config", str(tmp_path / "c.yaml")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and key in p.stderr, p.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.ckpt").exists()
