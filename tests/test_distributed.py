"""FSDP as a training strategy, on 2 CPU processes (torchrun, gloo): rollouts under full_params equal the
unsharded model's, a sharded training run equals DDP's (and one process's where draws do not depend on the
process count), checkpoints resume; and the launcher wiring (accelerate config, launch.sh, the train rule)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _run(cmd: list[str], timeout: int = 900) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(), timeout=timeout, check=False)
    assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-5000:])
    return r


# --------------------------------------------------------------------------- rollouts of the sharded model

def _rollout_worker(out: str) -> None:
    """Wrap a tiny model with FSDP as the trainer does, take one optimizer step, then roll out hard, soft and
    fuzzy CoTs under full_params; rank 0 repeats them with an unsharded copy of the gathered weights."""
    import torch

    from softcot.distributed import full_params, hf_state_dict, make_accelerator, prepare
    from softcot.loss import Scorer, backward_microbatches, policy_loss
    from softcot.optim import make_optimizer
    from softcot.rollout import rollout
    from softcot.schema import CoTMode, OptimConfig, RolloutConfig
    from tests.helpers import PROMPTS, make_tiny

    torch.set_num_threads(1)
    acc = make_accelerator("fsdp", mixed_precision="no", cpu=True)
    model, tok = make_tiny(seed=0)
    scorer, opt, _ = prepare(acc, Scorer(model), lambda p: make_optimizer(p, OptimConfig(lr=1e-2, warmup_steps=0), 9))
    rcfg = RolloutConfig(max_cot_tokens=6, max_answer_tokens=3)
    model.eval()
    with full_params(acc, scorer):
        ro = rollout(model, tok, PROMPTS, CoTMode("soft"), rcfg, generator=torch.Generator().manual_seed(0))
    model.train()
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    backward_microbatches(scorer, [ro], adv, 2, lambda t, a: policy_loss(t, a, len(PROMPTS)), acc)
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    try:                                        # the decoder outside the root's forward: sharded embeddings
        rollout(model, tok, PROMPTS, CoTMode("hard"), rcfg, generator=torch.Generator().manual_seed(1))
        outside = "ran"
    except RuntimeError as e:
        outside = str(e)[:300]
    got = {}
    with full_params(acc, scorer):
        for kind in ("hard", "soft", "fuzzy"):
            got[kind] = rollout(model, tok, PROMPTS, CoTMode(kind), rcfg, generator=torch.Generator().manual_seed(1))
    state = hf_state_dict(acc, scorer)
    if not acc.is_main_process:
        return
    ref, _ = make_tiny(seed=0)
    moved = max(float((ref.state_dict()[k] - v).abs().max()) for k, v in state.items())
    ref.load_state_dict(state)
    ref.eval()
    res = {"outside": outside, "moved": moved}
    for kind, ro in got.items():
        want = rollout(ref, tok, PROMPTS, CoTMode(kind), rcfg, generator=torch.Generator().manual_seed(1))
        res[kind] = {"ids_equal": torch.equal(ro.input_ids, want.input_ids),
                     "text_equal": ro.completions == want.completions,
                     "inputs_diff": (0.0 if ro.cot_inputs is None else
                                     float((ro.cot_inputs - want.cot_inputs).abs().max()))}
    Path(out).write_text(json.dumps(res))


def test_fsdp_rollouts_equal_the_unsharded_model(tmp_path):
    _run([*TORCHRUN, __file__, "rollouts", str(tmp_path / "res.json")])
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["moved"] > 1e-4                                 # the optimizer step changed the weights
    assert res["outside"] != "ran" and "storage" in res["outside"]
    for kind in ("hard", "soft", "fuzzy"):
        assert res[kind]["ids_equal"] and res[kind]["text_equal"], (kind, res[kind])
        assert res[kind]["inputs_diff"] < 1e-5, (kind, res[kind])


# --------------------------------------------------------------------------- sharded training runs

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same tiny training run (3 steps, validation at 0 and 2, checkpoints at 2 and 3) as FSDP and DDP on
    2 processes and on 1 process; and an FSDP run stopped after 2 steps, then resumed to 3."""
    from tests.helpers import PARITY_ROLLOUT, save_tiny, write_records
    d = tmp_path_factory.mktemp("fsdp")
    save_tiny(d / "model")
    write_records(d / "train.jsonl")
    write_records(d / "val.jsonl", 8)
    cfg = {"model": {"name_or_path": str(d / "model")}, "mode": {"kind": "soft"}, "rollout": PARITY_ROLLOUT,
           "data": {"train": str(d / "train.jsonl"), "val": str(d / "val.jsonl"), "val_size": 8,
                    "prompt_template": "Q: {question}\nA:"},
           "optim": {"lr": 3e-3, "warmup_steps": 0, "schedule": "constant"}, "steps": 3, "prompts_per_step": 4,
           "group_size": 4, "rollout_batch": 8, "micro_batch": 4, "save_every": 2, "eval_every": 2, "seed": 0,
           "threads": 1, "reward": "tests.helpers:parity_reward", "gradient_checkpointing": True,
           "diagnostics_every": 1}
    (d / "train.yaml").write_text(yaml.safe_dump(cfg))
    train = ["-m", "softcot.cli", "train", "--config", str(d / "train.yaml")]
    out = {}
    for name, launch, extra in (("fsdp2", TORCHRUN, ["strategy=fsdp"]), ("ddp2", TORCHRUN, ["strategy=ddp"]),
                                ("one", [sys.executable], ["strategy=fsdp"]),
                                ("resumed", TORCHRUN, ["strategy=fsdp", "steps=2"]),
                                ("resumed", TORCHRUN, ["strategy=fsdp"]), ("ddp_resumed", TORCHRUN, ["steps=2"]),
                                ("ddp_resumed", TORCHRUN, [])):
        _run([*launch, *train, *extra, f"output_dir={d / name}"])
        out[name] = d / name
    return out


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _same_steps(a: Path, b: Path, rel: float = 1e-4) -> None:
    ma, mb = _metrics(a), _metrics(b)
    assert len(ma) == len(mb) == 3
    for ra, rb in zip(ma, mb):
        assert ra["reward_mean"] == rb["reward_mean"] and ra["pass_rate"] == rb["pass_rate"], (ra, rb)
        for key in ("loss", "grad_norm", "logp_cot", "logp_answer", "grad_norm_cot", "grad_norm_answer"):
            assert ra[key] == pytest.approx(rb[key], rel=rel, abs=1e-4), (key, ra, rb)
    assert (a / "val.jsonl").read_text() == (b / "val.jsonl").read_text()


def _same_weights(a: Path, b: Path, tol: float = 1e-5) -> None:
    from safetensors.torch import load_file
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert sorted(wa) == sorted(wb)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < tol


def test_fsdp_training_equals_ddp_on_two_processes(runs):
    _same_steps(runs["fsdp2"], runs["ddp2"])
    _same_weights(runs["fsdp2"], runs["ddp2"])
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(runs["fsdp2"] / "model")        # a plain HF checkpoint


def test_fsdp_and_ddp_on_two_processes_equal_one_process(runs):
    """Every rollout's randomness is keyed by (seed, step, prompt, sample), so 2 processes draw what 1 draws."""
    _same_steps(runs["ddp2"], runs["one"])
    _same_steps(runs["fsdp2"], runs["one"])
    _same_weights(runs["fsdp2"], runs["one"])


def test_fsdp_resume_equals_ddp_resume(runs):
    """A stopped FSDP run resumes from its full-state checkpoint (weights and AdamW state) exactly as DDP does."""
    _same_steps(runs["resumed"], runs["ddp_resumed"])
    ma, mf = _metrics(runs["resumed"]), _metrics(runs["fsdp2"])
    assert ma[:2] == mf[:2]
    assert ma[2]["logp_cot"] == pytest.approx(mf[2]["logp_cot"], rel=1e-5)   # the same weights after step 2


# --------------------------------------------------------------------------- wiring

def test_fsdp_accelerate_config_parses():
    from accelerate.commands.config.config_args import load_config_from_file
    cfg = load_config_from_file(str(REPO / "profiles" / "accelerate" / "fsdp.yaml"))
    assert str(cfg.distributed_type).endswith("FSDP") and cfg.num_machines == 1 and cfg.mixed_precision == "bf16"
    fsdp = cfg.fsdp_config
    assert fsdp["fsdp_sharding_strategy"] == "FULL_SHARD" and fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    from softcot.distributed import fsdp_plugin
    plugin = fsdp_plugin()
    assert plugin.sharding_strategy.name == fsdp["fsdp_sharding_strategy"]
    assert plugin.backward_prefetch.name == fsdp["fsdp_backward_prefetch"]
    assert plugin.use_orig_params == fsdp["fsdp_use_orig_params"]


@pytest.mark.parametrize("strategy,gpus,config", [("fsdp", 8, "fsdp.yaml"), ("ddp", 8, "8gpu.yaml"),
                                                   ("fsdp", 1, "1gpu.yaml"), ("", 4, "8gpu.yaml")])
def test_launch_sh_picks_the_accelerate_config(tmp_path, strategy, gpus, config):
    fake = tmp_path / "accelerate"
    fake.write_text("#!/bin/sh\necho \"$@\"\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    env.pop("SOFTCOT_STRATEGY", None)
    if strategy:
        env["SOFTCOT_STRATEGY"] = strategy
    r = subprocess.run(["bash", "workflow/scripts/launch.sh", str(gpus), "train", "--config", "x.yaml"], cwd=REPO,
                       env=env, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert f"--config_file profiles/accelerate/{config} --num_processes {gpus} -m softcot.cli train" in r.stdout


def test_launch_sh_refuses_an_unknown_strategy():
    env = {**os.environ, "SOFTCOT_STRATEGY": "zero3"}
    r = subprocess.run(["bash", "workflow/scripts/launch.sh", "8", "train"], cwd=REPO, env=env,
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "train.settings.strategy" in r.stderr


@pytest.mark.skipif(shutil.which("snakemake") is None, reason="snakemake is not installed")
def test_train_rule_passes_the_strategy():
    r = subprocess.run(["snakemake", "-n", "-p", "--configfile", "config/presets/llama8b_gsm8k.yaml"], cwd=REPO,
                       capture_output=True, text=True, check=False, timeout=300)
    assert "SOFTCOT_STRATEGY=fsdp bash workflow/scripts/launch.sh 8 train" in r.stdout + r.stderr, r.stderr[-3000:]


def test_ddp_under_an_fsdp_launch_is_refused(monkeypatch):
    from softcot import distributed
    from softcot.config import ConfigError
    monkeypatch.setattr(distributed, "LAUNCHED_WITH_FSDP", True)
    with pytest.raises(ConfigError, match="strategy: ddp.*strategy: fsdp"):
        distributed.make_accelerator("ddp", cpu=True)
    r = subprocess.run([sys.executable, "-c", "from softcot.distributed import make_accelerator; "
                        "make_accelerator('ddp', cpu=True)"], env={**_env(), "ACCELERATE_USE_FSDP": "true"},
                       capture_output=True, text=True, check=False, cwd=REPO)
    assert r.returncode != 0 and "launched with an FSDP accelerate config" in r.stderr


if __name__ == "__main__" and sys.argv[1:2] == ["rollouts"]:
    sys.path.insert(0, str(REPO))
    _rollout_worker(sys.argv[2])
