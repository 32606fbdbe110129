"""The trainer scaled out on CPU: several processes under torchrun (gloo), split-invariant randomness, bf16."""
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

from softcot.loss import Scorer, policy_loss, rloo_advantages
from softcot.modes import mix
from softcot.rollout import rollout
from softcot.schema import CoTMode, RolloutConfig
from softcot.trainer import PREEMPTED_EXIT_CODE, mixed_precision
from tests.helpers import PARITY_ROLLOUT, save_tiny, write_records

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("base")
    save_tiny(d / "model")
    write_records(d / "train.jsonl")
    return d


def config(base: Path, path: Path, out: Path, **kw) -> Path:
    cfg = {"model": {"name_or_path": str(base / "model")}, "mode": {"kind": "soft"}, "rollout": PARITY_ROLLOUT,
           "reward": "tests.helpers:parity_reward",
           "data": {"train": str(base / "train.jsonl"), "prompt_template": "Q: {question}\nA:"},
           "optim": {"lr": 3e-3, "warmup_steps": 0, "schedule": "constant"}, "steps": 4, "prompts_per_step": 2,
           "group_size": 4, "rollout_batch": 8, "micro_batch": 2, "save_every": 1, "eval_every": 100,
           "threads": 1, "seed": 3, "log_rollouts": True, "output_dir": str(out)}
    cfg.update(kw)
    path.write_text(yaml.safe_dump(cfg))
    return path


def launch(cfg: Path, processes: int, *overrides: str, wait: bool = True):
    cmd = (TORCHRUN if processes == 2 else [sys.executable]) + ["-m", "softcot.cli", "train", "--config", str(cfg),
                                                                 *overrides]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    if wait:
        out, _ = p.communicate(timeout=600)
        return p.returncode, out
    return p


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def weights(out: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(out / "model" / "model.safetensors"))


@pytest.fixture(scope="module")
def runs(base, tmp_path_factory):
    """The same 4 steps on one process (one rollout batch of 8) and on two (4 rollouts each)."""
    d = tmp_path_factory.mktemp("runs")
    rc1, log1 = launch(config(base, d / "one.yaml", d / "one"), 1)
    rc2, log2 = launch(config(base, d / "two.yaml", d / "two", rollout_batch=4, micro_batch=3), 2)
    assert rc1 == 0, log1[-3000:]
    assert rc2 == 0, log2[-3000:]
    return d


def test_two_processes_draw_the_rollouts_of_one(runs):
    one, two = runs / "one", runs / "two"
    assert json.loads((two / "summary.json").read_text())["processes"] == 2, "the run did not have 2 processes"
    assert json.loads((one / "summary.json").read_text())["processes"] == 1
    # every rollout's reward and advantage, step by step
    assert (one / "rollouts.jsonl").read_text() == (two / "rollouts.jsonl").read_text()
    m1, m2 = jsonl(one / "metrics.jsonl"), jsonl(two / "metrics.jsonl")
    assert len(m1) == len(m2) == 4, "only the main process may write the logs"
    for a, b in zip(m1, m2):
        for key in ("reward_mean", "reward_std", "pass_rate", "frac_equal_groups", "cot_len", "answer_len"):
            assert a[key] == b[key], key
        for key in ("loss", "logp_cot", "logp_answer", "grad_norm"):     # only the all-reduce order differs
            assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-4), key
    w1, w2 = weights(one), weights(two)
    diff = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    assert diff < 1e-5, f"weights differ by {diff}"


def test_only_the_main_process_writes(runs):
    ckpt = runs / "two.ckpt"
    assert sorted(p.name for p in ckpt.iterdir() if p.is_file()) == ["latest", "metrics.jsonl", "rollouts.jsonl",
                                                                      "timing.jsonl"]
    assert len(jsonl(ckpt / "timing.jsonl")) == 4


def _wait_for_step(p, metrics: Path, step: int) -> None:
    deadline = time.time() + 300
    while time.time() < deadline and p.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"the run ended or stalled before step {step}: {p.poll()}")


def test_two_process_run_killed_then_resumed_is_byte_identical(base, runs, tmp_path):
    cfg = config(base, tmp_path / "k.yaml", tmp_path / "k", rollout_batch=4, micro_batch=3)
    p = launch(cfg, 2, wait=False)
    _wait_for_step(p, tmp_path / "k.ckpt" / "metrics.jsonl", 2)
    os.killpg(p.pid, signal.SIGKILL)                 # torchrun and both workers, as a node failure would
    p.wait(timeout=60)
    assert not (tmp_path / "k").exists()
    rc, log = launch(cfg, 2)
    assert rc == 0, log[-3000:]
    assert "resumed from" in log
    ref = runs / "two"
    assert (ref / "model" / "model.safetensors").read_bytes() == (tmp_path / "k" / "model" / "model.safetensors").read_bytes()
    for name in ("metrics.jsonl", "rollouts.jsonl"):
        assert (ref / name).read_bytes() == (tmp_path / "k" / name).read_bytes(), name


def test_sigusr1_on_one_process_stops_every_process_at_the_same_step(base, runs, tmp_path):
    cfg = config(base, tmp_path / "s.yaml", tmp_path / "s", rollout_batch=4, micro_batch=3, steps=30)
    p = launch(cfg, 2, wait=False)
    ckpt = tmp_path / "s.ckpt"
    _wait_for_step(p, ckpt / "metrics.jsonl", 2)
    workers = subprocess.run(["pgrep", "-f", f"output_dir={tmp_path / 's'}|{tmp_path / 's.yaml'}", "-P", str(p.pid)],
                             capture_output=True, text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(int(workers[-1]), signal.SIGUSR1)        # one worker only: the other must stop with it
    out, _ = p.communicate(timeout=300)
    assert out.count(f"exiting {PREEMPTED_EXIT_CODE}") == 1            # printed by the main process
    assert "exitcode" not in out or f"exitcode  : {PREEMPTED_EXIT_CODE}" in out or "75" in out
    done = len(jsonl(ckpt / "metrics.jsonl"))
    assert 2 <= done < 30
    assert (ckpt / "latest").read_text().strip() == f"step_{done:06d}", "every process must stop at the checkpoint"
    assert not (tmp_path / "s").exists()


def test_rollouts_do_not_depend_on_batching_or_compaction(base, tmp_path):
    """Single process: rollout batches of 8 or 4, micro-batches of 2 or 8, compaction on or off: same rollouts."""
    outs = []
    for i, kw in enumerate(({}, {"rollout_batch": 4, "micro_batch": 8},
                            {"rollout": {**PARITY_ROLLOUT, "compact": True}, "rollout_batch": 3})):
        rc, log = launch(config(base, tmp_path / f"c{i}.yaml", tmp_path / f"c{i}", steps=3, **kw), 1)
        assert rc == 0, log[-3000:]
        outs.append((tmp_path / f"c{i}" / "rollouts.jsonl").read_text())
    assert outs[0] == outs[1] == outs[2]


# --------------------------------------------------------------------------- bf16

def test_mixed_precision_follows_the_accelerate_config_or_names_the_conflict(monkeypatch):
    from softcot.config import ConfigError
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert mixed_precision("auto", False) == "no" and mixed_precision("auto", True) == "bf16"
    assert mixed_precision("bf16", False) == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    assert mixed_precision("auto", False) == "bf16" and mixed_precision("bf16", False) == "bf16"
    with pytest.raises(ConfigError, match="precision: fp32 conflicts with the accelerate config's mixed_precision: bf16"):
        mixed_precision("fp32", False)


@pytest.fixture(scope="module")
def confident(tmp_path_factory):
    """A tiny char model trained to answer every prompt with one CoT, so that greedy decoding has clear margins."""
    from softcot.chartok import build_char_tokenizer
    from softcot.modeling import tiny_model
    torch.manual_seed(0)
    tok = build_char_tokenizer()
    model = tiny_model("llama", vocab_size=len(tok), hidden=32, seed=0)
    model.generation_config.eos_token_id = tok.eos_token_id
    texts = [f"Q: {q}\nA: 3+4=7 The final answer is: \\boxed{{7}}" for q in ("3+4", "1+6", "5+2", "2+5")]
    ids = torch.tensor([tok.encode(t) + [tok.eos_token_id] for t in texts])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy"])
def test_bf16_greedy_rollout_agrees_with_fp32(confident, kind):
    """Greedy CoTs under CPU bf16 autocast equal fp32's for at least their first 16 tokens."""
    model, tok = confident
    prompts = ["Q: 3+4\nA:", "Q: 1+6\nA:", "Q: 5+2\nA:"]
    cfg = RolloutConfig(max_cot_tokens=40, max_answer_tokens=4, answer_temperature=0.0)
    mode = CoTMode(kind, greedy=True)
    ref = rollout(model, tok, prompts, mode, cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = rollout(model, tok, prompts, mode, cfg)
    for a, b in zip(ref.cot_ids, low.cot_ids):
        assert len(a) >= 16 and a[:16] == b[:16]


def test_density_and_rloo_sums_are_fp32_under_bf16_autocast(confident):
    model, tok = confident
    keys = torch.arange(8)
    ro = rollout(model, tok, ["Q: 3+4\nA:"] * 8, CoTMode("soft"), RolloutConfig(max_cot_tokens=6), keys=keys)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = Scorer(model)(ro)
        E = model.get_input_embeddings().weight
        mean = mix(torch.randn(2, E.shape[0]), E, 0.5)
        adv = rloo_advantages([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], 4)
        loss = policy_loss(terms, adv, 8)
    assert ro.cot_inputs.dtype == torch.float32
    assert mean.dtype == torch.float32
    assert terms["cot"].dtype == terms["answer"].dtype == torch.float32
    assert adv.dtype == torch.float32 and loss.dtype == torch.float32
    assert torch.isfinite(loss)


def test_bf16_training_stays_finite_and_raises_the_reward(base, tmp_path):
    kw = dict(precision="bf16", mode={"kind": "hard"}, steps=40, prompts_per_step=4, group_size=8, rollout_batch=32,
              micro_batch=16, save_every=40)
    rc, log = launch(config(base, tmp_path / "b.yaml", tmp_path / "b", **kw), 1)
    assert rc == 0, log[-3000:]
    rc, log = launch(config(base, tmp_path / "n.yaml", tmp_path / "n", shuffle_advantages=True, **kw), 1)
    assert rc == 0, log[-3000:]
    m, null = jsonl(tmp_path / "b" / "metrics.jsonl"), jsonl(tmp_path / "n" / "metrics.jsonl")
    assert all(r["nonfinite_skipped"] == 0 and r["grad_norm"] == r["grad_norm"] for r in m)
    first = sum(r["reward_mean"] for r in m[:10]) / 10
    last = sum(r["reward_mean"] for r in m[-10:]) / 10
    null_last = sum(r["reward_mean"] for r in null[-10:]) / 10
    assert last > first + 5 and last > null_last + 3, (first, last, null_last)
