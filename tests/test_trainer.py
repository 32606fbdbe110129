"""softcot.trainer: learning on a toy reward against a null control (every CoT mode), the new modes from the
command line, the per-step logs, exact resume after SIGTERM, SIGUSR1 and kill -9, seeds, non-finite steps, and
the reward called by keyword, TRL-style. Scaled out on CPU: several processes under torchrun (gloo),
split-invariant randomness, bf16.
(Config errors are in tests/test_schema.py and tests/test_cli.py; the export in tests/test_export.py.)"""
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
from softcot.trainer import PREEMPTED_EXIT_CODE, mixed_precision, train
from tests.helpers import (
    PARITY_ROLLOUT,
    char_tokenizer,
    parity_reward,
    save_tiny,
    tiny_train_cfg,
    write_records,
    write_train_yaml,
)


def rewards_of(out: Path) -> list[float]:
    return [json.loads(l)["reward_mean"] for l in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", ["hard", "soft", "fuzzy", "multiplex", "gumbel"])
def test_training_raises_the_reward_on_a_toy_task(train_base, tmp_path, kind):
    """The reward reads the sampled answer, which depends on the CoT inputs; a null control stays flat."""
    train(tiny_train_cfg(train_base, tmp_path / "rl", kind), reward_fn=parity_reward)
    train(tiny_train_cfg(train_base, tmp_path / "null", kind, shuffle_advantages=True), reward_fn=parity_reward)
    r, n = rewards_of(tmp_path / "rl"), rewards_of(tmp_path / "null")
    first, last, null_last = sum(r[:10]) / 10, sum(r[-10:]) / 10, sum(n[-10:]) / 10
    assert last > first + 8, f"{kind}: reward {first:.1f} -> {last:.1f}"
    assert last > null_last + 5, f"{kind}: {last:.1f} vs null control {null_last:.1f}"


@pytest.mark.parametrize("kind", ["multiplex", "gumbel"])
def test_cli_trains_the_new_kinds_from_a_mode_override(train_base, tmp_path, kind):
    """`softcot train --config ... mode.kind=<kind>` runs; the saved config records the mode and its options."""
    cfg = write_train_yaml(train_base, tmp_path / "c.yaml", tmp_path / "out", steps=3, eval_every=3)
    p = subprocess.run([sys.executable, "-m", "softcot.cli", "train", "--config", str(cfg), f"mode.kind={kind}",
                        "mode.multiplex_k=2", "mode.gumbel_top_k=3"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    mode = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())["mode"]
    assert (mode["kind"], mode["multiplex_k"], mode["gumbel_top_k"]) == (kind, 2, 3)
    assert len(rewards_of(tmp_path / "out")) == 3


def test_metrics_log_every_per_step_quantity(train_base, tmp_path):
    train(tiny_train_cfg(train_base, tmp_path / "r", "soft", steps=3, diagnostics_every=1), reward_fn=parity_reward)
    rows = [json.loads(l) for l in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    row = rows[-1]
    for key in ("reward_mean", "reward_std", "frac_equal_groups", "cot_len", "answer_len", "grad_norm",
                "logp_cot", "logp_answer", "grad_norm_cot", "grad_norm_answer", "nonfinite_skipped", "lr"):
        assert key in row and row[key] == row[key], key          # present and not NaN
    assert row["lr"] == pytest.approx(3e-3) and row["nonfinite_skipped"] == 0
    assert 0 < row["cot_len"] <= 4 and 0 < row["answer_len"] <= 2
    timing = json.loads((tmp_path / "r" / "timing.jsonl").read_text().splitlines()[-1])
    assert {"rollout_s", "score_fwd_s", "backward_s", "optim_s"} <= set(timing)


def test_reward_is_called_by_keyword_with_columns_and_completion_ids(train_base, tmp_path):
    """A TRL-style reward gets the step's completions, their token ids and the records' columns, one per rollout."""
    tok = char_tokenizer()
    calls = []

    def reward(completions, completion_ids, prompts, answer, question, id, **kwargs):
        calls.append(len(completions))
        assert len(completion_ids) == len(prompts) == len(answer) == len(question) == len(id) == len(completions)
        for c, ids, p, a, q in zip(completions, completion_ids, prompts, answer, question):
            assert tok.decode(ids, skip_special_tokens=True) == c
            assert p == f"Q: {q}\nA:" and a == str(int(q.split("+")[0]) + 1)
        return [float(len(c)) for c in completions]
    train(tiny_train_cfg(train_base, tmp_path / "r", "hard", steps=2), reward_fn=reward)
    assert calls == [32, 32]                                         # B x G = 4 x 8 per step


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
def test_interrupted_run_resumes_to_identical_results(train_base, tmp_path, sig):
    ref = run_cli(write_train_yaml(train_base, tmp_path / "a.yaml", tmp_path / "a"))
    assert ref == 0
    cfg = write_train_yaml(train_base, tmp_path / "b.yaml", tmp_path / "b")
    rc = run_cli(cfg, kill_after_step=5, sig=sig)
    assert rc == (-signal.SIGKILL if sig == signal.SIGKILL else PREEMPTED_EXIT_CODE)
    assert not (tmp_path / "b").exists(), "no output may exist before the run has finished"
    assert run_cli(cfg) == 0
    a, b = model_tensors(tmp_path / "a"), model_tensors(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for name in ("metrics.jsonl", "val.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_same_seed_same_bytes_other_seed_differs(train_base, tmp_path):
    for name, seed in (("x", 3), ("y", 3), ("z", 4)):
        run_cli(write_train_yaml(train_base, tmp_path / f"{name}.yaml", tmp_path / name, seed=seed, steps=4))
    m = {n: (tmp_path / n / "metrics.jsonl").read_bytes() for n in "xyz"}
    assert m["x"] == m["y"] and m["x"] != m["z"]


@pytest.mark.filterwarnings(r"ignore:Detected call of .lr_scheduler.step\(\). before:UserWarning")  # a skipped step
def test_nonfinite_steps_are_skipped_then_stop_the_run(train_base, tmp_path):
    def nan_reward(prompts, completions, **_):
        return [float("nan") if i % 2 else 1.0 for i in range(len(completions))]
    cfg = tiny_train_cfg(train_base, tmp_path / "nan", "hard", steps=20, max_nonfinite_steps=3, save_every=1)
    with pytest.raises(RuntimeError, match="non-finite"):
        train(cfg, reward_fn=nan_reward)
    ck = cfg.checkpoint_dir
    rows = [json.loads(l) for l in (ck / "metrics.jsonl").read_text().splitlines()]
    assert [r["nonfinite_skipped"] for r in rows] == [1, 2, 3, 4]
    assert not list(ck.glob("step_*")), "no checkpoint may be written from a corrupted state"


# Scaled out: several processes, split-invariant randomness, bf16.

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
