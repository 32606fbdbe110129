"""softcot.trainer: learning on a toy reward against a null control (every CoT mode), the new modes from the
command line, the per-step logs, exact resume after SIGTERM, SIGUSR1 and kill -9, seeds, non-finite steps, and
the reward called by keyword, TRL-style.
(Config errors are in tests/test_schema.py and tests/test_cli.py; the export in tests/test_export.py.)"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from softcot.trainer import PREEMPTED_EXIT_CODE, train
from tests.helpers import char_tokenizer, parity_reward, tiny_train_cfg, write_train_yaml


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
