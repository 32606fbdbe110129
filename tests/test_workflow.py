"""The Snakemake workflow: dry runs per target and preset, the SLURM plan, the config check, lint, and a
smoke run of the whole DAG on a reduced config (config/ci.yaml)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "config" / "presets").glob("*.yaml"))
TARGETS = ["all", "table1", "table2", "table3_5", "table6", "table8", "fig2", "fig3", "fig4", "fig5"]


def smk(*args, cwd=ROOT, timeout=600):
    p = subprocess.run(["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def planned(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    stats = out.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) not in ("total", "all")}


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_per_target(target):
    rc, out = smk("-n", "--nolock", "--cores", "2", target)
    assert rc == 0, out[-3000:]
    jobs = planned(out)
    if target.startswith("fig") or target.startswith("table"):
        assert jobs.get(target) == 1 or "Nothing to be done" in out


def test_study_plans_null_controls_and_levers(tmp_path):
    extra = tmp_path / "levers.yaml"
    extra.write_text("study:\n  modes: [soft]\n  seeds: [0, 1]\n  levers:\n    G16: {group_size: 16}\n"
                     "    slow: {optim: {lr: 1.0e-5}, steps: 120}\n")
    rc, out = smk("study", "-n", "-p", "--forceall", "--nolock", "--cores", "2", "--configfile", str(extra))
    assert rc == 0, out[-3000:]
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    runs = len(cfg["train"]["modes"]) * len(cfg["train"]["seeds"])
    levers = set(cfg.get("study", {}).get("levers", {})) | {"G16", "slow"}   # Snakemake merges the two configs
    jobs = planned(out)
    assert jobs["train"] == 2 * runs + len(levers) * 2 and jobs["study_curves"] == 1 and jobs["diagnose_snr"] == 1
    assert "output_dir=results/toy/train/soft-leverslow/seed1" in out
    assert "optim.lr=1e-05 steps=120 seed=1" in out and "mode.kind=soft group_size=16 seed=0" in out


def test_default_grid_plans_every_mode_and_seed():
    rc, out = smk("-n", "--forceall", "--nolock", "--cores", "2")
    assert rc == 0, out[-3000:]
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    runs = len(cfg["train"]["modes"]) * len(cfg["train"]["seeds"])
    jobs = planned(out)
    assert jobs["train"] == runs and jobs["export"] == runs and jobs["pretrain_base"] == 1
    assert jobs["evaluate"] == (runs + 1) * len(cfg["data"]["test_sets"])


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_dry_run(preset):
    rc, out = smk("-n", "--cores", "2", "--configfile", f"config/presets/{preset}")
    assert rc == 0, out[-3000:]
    jobs = planned(out)
    assert jobs["train"] == 9 or preset.startswith("smollm2")
    assert "pretrain_base" not in jobs and "toy_data" not in jobs


@pytest.mark.parametrize("preset", [p for p in PRESETS if not p.startswith("smollm2")])
def test_slurm_profile_plans_gpus_on_training_and_evaluation(preset):
    rc, out = smk("-n", "-j", "10", "--executor", "slurm", "--workflow-profile", "profiles/slurm",
                  "--configfile", f"config/presets/{preset}")
    assert rc == 0, out[-3000:]
    blocks = re.split(r"\n(?=\S*rule \w+:)", out)
    seen = set()
    for b in blocks:
        m = re.search(r"rule (\w+):", b)
        if not m or "resources:" not in b:
            continue
        rule, res = m.group(1), b.split("resources:")[1].split("\n")[0]
        if rule == "train":
            assert "gpu=8" in res and "slurm_extra=--signal=USR1@300" in res and "gres" not in res
            seen.add(rule)
        if rule == "evaluate":
            assert "gpu=1" in res
            seen.add(rule)
        if rule == "export":        # no resources of its own: the profile's default-resources must reach it
            assert "mem_mb=16000" in res and "runtime=60" in res
            seen.add(rule)
    assert seen == {"train", "evaluate", "export"}


WRITER_CASES = [   # (section, --model, overrides, the YAML content expected): one per rule that writes a config
    ({"seed": 0, "steps": 6}, None, ["threads=2"], {"seed": 0, "steps": 6, "threads": 2}),           # pretrain_base
    ({"seed": 0}, None, [], {"seed": 0}),                                                           # toy_data
    ({"steps": 4, "optim": {"lr": 1e-5}}, {}, [], {"steps": 4, "optim": {"lr": 1e-5}}),              # train_config, toy
    ({"n_samples": 32, "model": {"dtype": "bf16", "name_or_path": "own"}},                          # eval_config, preset
     {"name_or_path": "meta/m", "chat_template": False}, [],
     {"n_samples": 32, "model": {"chat_template": False, "dtype": "bf16", "name_or_path": "own"}}),
    ({"a": {"b": 1}}, {"name_or_path": "m"}, ["a.c=2", "model.name_or_path=z"],                     # overrides last
     {"a": {"b": 1, "c": 2}, "model": {"name_or_path": "z"}}),
]


@pytest.mark.parametrize("section,model,overrides,expected", WRITER_CASES)
def test_config_writer_writes_the_sorted_yaml_of_its_section(tmp_path, section, model, overrides, expected):
    import json
    import sys
    out = tmp_path / "sub" / "cfg.yaml"
    args = [sys.executable, str(ROOT / "workflow/scripts/write_yaml.py"), str(out), json.dumps(section), *overrides]
    if model is not None:
        args += ["--model", json.dumps(model)]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert out.read_bytes() == yaml.safe_dump(expected, sort_keys=True).encode()
    assert [f.name for f in out.parent.iterdir()] == ["cfg.yaml"]          # written atomically: no temp file left


def test_config_writer_names_a_bad_argument(tmp_path):
    import sys
    p = subprocess.run([sys.executable, str(ROOT / "workflow/scripts/write_yaml.py"), str(tmp_path / "x.yaml"), "{}",
                        "--model", "[1]"], capture_output=True, text=True)
    assert p.returncode != 0 and "--model must be a JSON object" in p.stderr and not (tmp_path / "x.yaml").exists()


BAD_CONFIGS = [
    ("train:\n  modes: [lukewarm]\n", "modes"),
    ("train:\n  seeds: []\n", "seeds"),
    ("train:\n  settings:\n    mode: {tau: -1}\n", "train.settings.mode.tau"),
    ("train:\n  settings:\n    rollout: {max_cot_tokens: -3}\n", "train.settings.rollout.max_cot_tokens"),
    ("train:\n  settings:\n    learning_rate: 0.1\n", "learning_rate"),
    ("eval:\n  n_samples: 4\n  ks: [8]\n", "eval.ks"),
    ("eval:\n  settings: [warm_greedy]\n", "eval.settings"),
    ("figures:\n  dpi: fast\n", "dpi"),
    ("experiment: 'has space'\n", "experiment"),
    ("data:\n  source: benchmarks\n  sets:\n    train: {benchmark: nosuch}\n    val: {benchmark: gsm8k}\n", "benchmark"),
    ("data:\n  source: benchmarks\n  sets:\n    train: {benchmark: gsm8k, path: /no/such/dir}\n    val: {benchmark: gsm8k}\n",
     "data.sets.train.path"),
    ("pretrain:\n  hidden_sizee: 3\n", "hidden_sizee"),
    ("study:\n  levers:\n    fast: {optim: {lr: -1}}\n", "study.levers.fast.optim.lr"),
]


@pytest.mark.parametrize("text,key", BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_bad_config_is_rejected_before_any_job_naming_the_key(tmp_path, text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    rc, out = smk("-n", "--cores", "1", "--configfile", str(bad))
    assert rc != 0
    assert key in out, out[-2000:]


def test_lint_passes():
    rc, out = smk("--lint")
    assert rc == 0, out[-3000:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A copy of the repo's workflow files, run whole on config/ci.yaml."""
    work = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    rc, out = smk("--cores", "2", "--configfile", "config/ci.yaml", cwd=work, timeout=1500)
    assert rc == 0, out[-5000:]
    return work


def test_smoke_run_leaves_every_table_figure_and_export(smoke):
    res = smoke / "results" / "ci"
    for t in ("table1", "table2", "table3_5"):
        assert (res / "tables" / f"{t}.md").stat().st_size > 0 and (res / "tables" / f"{t}.csv").exists()
    for f in ("fig2", "fig3", "fig4"):
        assert (res / "figures" / f"{f}.png").stat().st_size > 0 and (res / "figures" / f"{f}.pdf").exists()
    for mode in ("hard", "soft", "fuzzy"):
        assert (res / "export" / mode / "seed0" / "model.safetensors").exists()
        assert (res / "export" / mode / "seed0" / "README.md").exists()
    assert "no finetune" in (res / "tables" / "table1.md").read_text()


COMPARED = ("tables/*.csv", "tables/*.md", "train/*/seed*/metrics.jsonl", "train/*/seed*/val.jsonl",
            "train/*/seed*/model/model.safetensors", "export/*/seed*/model.safetensors", "eval/*/*/summary.json",
            "eval/*/*/*/samples.jsonl", "ood/*.json")


def test_kill9_of_whole_run_then_unlock_and_rerun_gives_identical_results(smoke, tmp_path_factory):
    """kill -9 of snakemake and all its jobs in the middle of RL training (a node failure), then
    `snakemake --unlock` (Snakemake's own guard: a killed run leaves its lock behind) and the same command
    again: the killed training job resumes from its step checkpoint (kept outside the declared outputs), and
    every table, metric, sample file and weight file is byte-identical to the uninterrupted smoke run."""
    import os
    import signal
    import time
    work = tmp_path_factory.mktemp("wf_kill")
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    cmd = ["snakemake", "--cores", "2", "--configfile", "config/ci.yaml"]
    p = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    ckpts = work / "checkpoints" / "ci" / "train"
    deadline = time.time() + 900
    killed = False
    while time.time() < deadline and p.poll() is None:
        if any(ckpts.glob("*/seed0/step_00000[1-5]")):
            os.killpg(p.pid, signal.SIGKILL)            # the whole run: snakemake and every job it started
            killed = True
            break
        time.sleep(0.02)
    p.wait(timeout=60)
    assert killed, "the run ended before training checkpointed"
    partial = [d for d in ckpts.glob("*/seed0") if not (work / "results/ci/train" / d.parent.name / "seed0").exists()]
    assert partial, "no training job was cut short"
    rc, out = smk("--cores", "2", "--configfile", "config/ci.yaml", cwd=work, timeout=600)
    assert rc != 0 and "--unlock" in out, "a killed run's lock is expected to stop a plain rerun"
    rc, out = smk("--unlock", "--cores", "2", "--configfile", "config/ci.yaml", cwd=work)
    assert rc == 0, out[-3000:]
    rc, out = smk("--cores", "2", "--configfile", "config/ci.yaml", cwd=work, timeout=1500)
    assert rc == 0, out[-5000:]
    logs = "".join(f.read_text() for f in (work / "logs" / "ci" / "train").rglob("seed0.log"))
    assert "resumed from" in logs, "the rerun must resume the killed training job from its checkpoint"
    ref, got = smoke / "results" / "ci", work / "results" / "ci"
    n = 0
    for pattern in COMPARED:
        a = sorted(q.relative_to(ref) for q in ref.glob(pattern))
        assert a == sorted(q.relative_to(got) for q in got.glob(pattern)), pattern
        for f in a:
            assert (ref / f).read_bytes() == (got / f).read_bytes(), f
            n += 1
    assert n > 30


def test_killed_training_job_is_retried_and_resumes(smoke, tmp_path_factory):
    """kill -9 of one training job (an OOM kill, a lost worker) while Snakemake runs on: its retry resumes
    the job from the step checkpoint, and the run ends with the uninterrupted smoke run's weights."""
    import os
    import signal
    import time
    work = tmp_path_factory.mktemp("wf_job_kill")
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    p = subprocess.Popen(["snakemake", "results/ci/train/hard/seed0", "--cores", "2", "--configfile",
                          "config/ci.yaml"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ck = work / "checkpoints" / "ci" / "train" / "hard" / "seed0"
    deadline, killed = time.time() + 900, False
    while time.time() < deadline and p.poll() is None:
        if any(ck.glob("step_00000[1-5]")):          # mid-run: checkpointed, not finished
            out = subprocess.run(["pgrep", "-f", f"output_dir=results/ci/train/hard/seed0"], capture_output=True,
                                 text=True).stdout.split()
            if out:
                for pid in out:
                    os.kill(int(pid), signal.SIGKILL)
                killed = True
                break
        time.sleep(0.02)
    log, _ = p.communicate(timeout=900)
    assert killed, "the training job ended before it could be killed"
    assert p.returncode == 0, log[-3000:]
    assert "resumed from" in (work / "logs" / "ci" / "train" / "hard" / "seed0.log").read_text()
    a = (smoke / "results/ci/train/hard/seed0/model/model.safetensors").read_bytes()
    assert a == (work / "results/ci/train/hard/seed0/model/model.safetensors").read_bytes()


def test_second_run_does_nothing(smoke):
    rc, out = smk("-n", "--cores", "2", "--configfile", "config/ci.yaml", cwd=smoke)
    assert rc == 0 and "Nothing to be done" in out, out[-2000:]


def test_style_change_reruns_only_that_figure(smoke, tmp_path):
    style = tmp_path / "style.yaml"
    style.write_text("figures:\n  fig3:\n    dpi: 90\n")
    rc, out = smk("-n", "--cores", "2", "--configfile", "config/ci.yaml", str(style), cwd=smoke)
    assert rc == 0, out[-2000:]
    assert planned(out) == {"fig3": 1}


def test_one_figure_rebuilds_alone_from_cache(smoke):
    (smoke / "results" / "ci" / "figures" / "fig4.png").unlink()
    rc, out = smk("fig4", "--cores", "2", "--configfile", "config/ci.yaml", cwd=smoke)   # target first:
    # --configfile takes several values and would swallow a target written after it
    assert rc == 0, out[-2000:]
    assert planned(out) == {"fig4": 1}
    assert (smoke / "results" / "ci" / "figures" / "fig4.png").exists()
