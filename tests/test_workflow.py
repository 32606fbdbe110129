"""The Snakemake workflow: the shell commands that dry runs plan (per target, the default grid, the study,
the ablations, the estimators comparison, each preset and its overrides), the SLURM plan, the config writer,
the config check, lint, and a smoke run of the whole DAG on a reduced config (config/ci.yaml), then of the
estimators target on top of it."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field as dataclass_field
from pathlib import Path

import pytest
import yaml

from softcot import digest, runs
from softcot.config_layers import resolve

ROOT = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (ROOT / "config" / "presets").glob("*.yaml"))
TARGETS = ["all", "table1", "table2", "table3_5", "table6", "table8", "fig2", "fig3", "fig4", "fig5"]
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def smk(*args, cwd=ROOT, timeout=600, env=None):
    p = subprocess.run(["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    return p.returncode, p.stdout + p.stderr


def planned(out: str) -> dict[str, int]:
    """The 'Job stats' table of a dry run as {rule: count}."""
    stats = out.split("Job stats:")[-1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)
            if m.group(1) not in ("total", "all")}


@dataclass
class Job:
    """One job of a `snakemake -n -p` printout."""
    rule: str
    wildcards: dict
    output: list
    shell: str | None
    input: list = dataclass_field(default_factory=list)

    def commands(self, with_env: bool = False) -> list[list[str]]:
        """The shell command as argument lists, one per `&&` part, each without its output redirection and
        (unless with_env) its leading environment assignments (`SOFTCOT_STRATEGY=ddp bash ...`: see `env`)."""
        parts, cur = [], []
        for token in [*shlex.split(self.shell or ""), "&&"]:
            if token == "&&":
                cur = cur[:cur.index(">")] if ">" in cur else cur
                parts.append(cur if with_env else cur[len(self._env(cur)):])
                cur = []
            else:
                cur.append(token)
        return [c for c in parts if c]

    @staticmethod
    def _env(argv: list[str]) -> list[str]:
        n = next((i for i, a in enumerate(argv) if not re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", a, re.S)), len(argv))
        return argv[:n]

    @property
    def argv(self) -> list[str]:
        """The last command (the one that does the job's work)."""
        return self.commands()[-1]

    @property
    def env(self) -> dict[str, str]:
        """The VAR=value assignments that prefix the last command."""
        full = self.commands(with_env=True)[-1]
        return dict(a.split("=", 1) for a in full[:len(full) - len(self.argv)])


def parse_jobs(out: str) -> list[Job]:
    jobs = []
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", out, flags=re.M)[1:]:
        field = lambda key: (re.search(rf"^    {key}: (.*)$", block, re.M) or [None, None])[1]  # noqa: E731
        shell = re.search(r"^Shell command: (.*?)(?=\n+(?:\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]$|Job stats:|Reasons:"
                          r"|This was a dry-run)|\Z)", block, re.M | re.S)       # a command may span lines
        wildcards = dict(kv.split("=", 1) for kv in (field("wildcards") or "").split(", ") if kv)
        jobs.append(Job(re.match(r"(?:local)?rule (\w+):", block)[1], wildcards,
                        (field("output") or "").split(", "), None if not shell or shell[1] == "None" else shell[1],
                        (field("input") or "").split(", ")))
    return jobs


def dry_run(*args) -> tuple[str, list[Job]]:
    """`snakemake ARGS -n -p --forceall`: every job of the targets is planned, whatever exists on disk."""
    rc, out = smk(*args, "-n", "-p", "--forceall", "--nolock", "--cores", "2")
    assert rc == 0, out[-3000:]
    jobs = parse_jobs(out)
    assert len(jobs) == sum(planned(out).values()) + ("rule all:" in out), "a printed job was not parsed"
    return out, jobs


def only(jobs: list[Job], rule: str, **wildcards) -> Job:
    found = [j for j in jobs if j.rule == rule and all(j.wildcards.get(k) == str(v) for k, v in wildcards.items())]
    assert len(found) == 1, f"{len(found)} jobs of rule {rule} {wildcards}"
    return found[0]


def values(argv: list[str], flag: str) -> list[str]:
    """The arguments after `flag` up to the next --option."""
    i = argv.index(flag) + 1
    j = next((k for k in range(i, len(argv)) if argv[k].startswith("--")), len(argv))
    return argv[i:j]


def train_overrides(argv: list[str]) -> list[str]:
    """The variant's overrides and the seed in `launch.sh GPU train --config CFG ... seed=K model.name_or_path=...`."""
    assert argv[:2] == ["bash", "workflow/scripts/launch.sh"] and argv[3:5] == ["train", "--config"], argv
    return argv[6:next(i for i, a in enumerate(argv) if a.startswith("model.name_or_path="))]


def flat(d: dict, prefix: str = "") -> dict:
    """{'optim': {'lr': 1e-5}} -> {'optim.lr': 1e-5}"""
    out = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def grid(cfg=DEFAULT) -> list[str]:
    return ["base"] + [f"{m}_seed{s}" for m in cfg["train"]["modes"] for s in cfg["train"]["seeds"]]


def evals(models, datasets, res="results/toy") -> set[str]:
    return {f"{res}/eval/{m}/{d}/summary.json" for m in models for d in datasets}


def ablation_models(param, cfg=DEFAULT) -> list[str]:
    ab = cfg["ablations"]
    return [f"{ab['mode']}-{param}{v}_seed{s}" for v in ab[param] for s in ab["seeds"]]


TEST_SETS = DEFAULT["data"]["test_sets"]
TARGET_INPUTS = {   # what each table or figure reads, as the default config names it
    "table1": evals(grid(), TEST_SETS), "table3_5": evals(grid(), TEST_SETS), "fig3": evals(grid(), TEST_SETS),
    "fig4": evals(grid(), TEST_SETS[:1]),
    "table2": {f"results/toy/ood/{m}.json" for m in grid()},
    "table6": evals(ablation_models("gamma"), TEST_SETS[:1]), "table8": evals(ablation_models("tau"), TEST_SETS[:1]),
    "fig2": {f"results/toy/train/{m}/seed{s}" for m in DEFAULT["train"]["modes"] for s in DEFAULT["train"]["seeds"]},
    "fig5": {f"results/toy/train/{m.replace('_seed', '/seed')}"
             for m in ablation_models("gamma") + ablation_models("tau")},
}


@pytest.mark.parametrize("target", TARGETS)
def test_dry_run_per_target(target):
    """Each named target plans its own rule once, with the command that reads exactly its inputs."""
    _, jobs = dry_run(target)
    if target == "all":
        rules = {j.rule for j in jobs}
        assert {"table1", "table2", "table3_5", "fig2", "fig3", "fig4", "export"} <= rules
        assert not {"table6", "table8", "fig5", "study"} & rules                   # extra targets only
        assert not any(r.startswith("estimators") for r in rules)
        assert not any(j.wildcards.get("variant") in ("multiplex", "gumbel") for j in jobs)
        return
    job = only(jobs, target)
    kind = "tables" if target.startswith("table") else "figures"
    argv = job.argv
    assert argv[:3] == ["softcot", kind, target], argv
    assert set(values(argv, "--inputs")) == TARGET_INPUTS[target]
    assert values(argv, "--out") == [f"results/toy/{kind}/{target}"]
    if kind == "tables" or target in ("fig3", "fig4"):
        assert values(argv, "--test-sets") == TEST_SETS
    if kind == "tables":
        assert "--preset" not in argv                                             # config.yaml: preset null
    else:
        style = {k: v for k, v in DEFAULT["figures"].items() if not k.startswith("fig")}
        assert json.loads(values(argv, "--style")[0]) == {**style, **DEFAULT["figures"].get(target, {})}


def test_default_grid_plans_every_mode_and_seed():
    _, jobs = dry_run()
    modes, seeds, sets = DEFAULT["train"]["modes"], DEFAULT["train"]["seeds"], DEFAULT["data"]["test_sets"]
    runs = len(modes) * len(seeds)
    stats = {}
    for j in jobs:
        stats[j.rule] = stats.get(j.rule, 0) + 1
    assert stats["train"] == runs and stats["export"] == runs and stats["pretrain_base"] == 1
    # resources.evaluate.per_model: one job per model runs every test set and the out-of-domain checks
    assert stats["evaluate_model"] == runs + 1 and "evaluate" not in stats and "ood" not in stats
    threads = DEFAULT["resources"]["train"]["threads"]
    for m in modes:
        for s in seeds:
            job = only(jobs, "train", variant=m, seed=s)
            argv = job.argv
            assert job.env == {"SOFTCOT_STRATEGY": "ddp"}                                # launch.sh: DDP if GPUs
            assert train_overrides(argv) == [f"mode.kind={m}", f"seed={s}"]
            assert argv[2] == "0" and argv[5] == "results/toy/configs/train.yaml"          # launch.sh GPUs: none
            assert only(jobs, "train", variant=m, seed=s).env == {"SOFTCOT_STRATEGY": "ddp"}   # TrainConfig's default
            assert argv[6 + len(train_overrides(argv)):] == [
                "model.name_or_path=results/toy/base", "data.train=results/toy/data/train.jsonl",
                "data.val=results/toy/data/val.jsonl", f"output_dir=results/toy/train/{m}/seed{s}",
                f"ckpt_dir=checkpoints/toy/train/{m}/seed{s}", f"threads={threads}"]
            assert only(jobs, "export", variant=m, seed=s).argv == [
                "softcot", "export", "--run", f"results/toy/train/{m}/seed{s}", "--eval",
                *[f"results/toy/eval/{m}_seed{s}/{d}/summary.json" for d in sets],
                "--out", f"results/toy/export/{m}/seed{s}"]
    for model in grid():
        path = "results/toy/base" if model == "base" else f"results/toy/train/{model.replace('_seed', '/seed')}/model"
        assert only(jobs, "evaluate_model", model=model).argv == [
            "softcot", "evaluate", "--config", "results/toy/configs/eval.yaml", f"model.name_or_path={path}",
            f"threads={DEFAULT['resources']['evaluate']['threads']}",
            *[a for d in sets for a in ("--data", f"results/toy/data/{d}.jsonl", "--out", f"results/toy/eval/{model}/{d}")],
            "--restart-on-change", "--ood-data", "ood=results/toy/data/ood.jsonl", "--ood-name", model,
            "--ood-limit", str(DEFAULT["ood"]["limit"]), "--ood-batch-size", str(DEFAULT["ood"]["batch_size"]),
            "--ood-out", f"results/toy/ood/{model}.json"]
    writer = ["python", "workflow/scripts/write_yaml.py"]
    toy, pretrain = only(jobs, "toy_data").commands(), only(jobs, "pretrain_base").commands()
    assert toy[0][:3] == writer + ["results/toy/data/toy_config.yaml"]
    assert json.loads(toy[0][3]) == DEFAULT["data"]["toy"] and toy[0][4:] == []
    assert pretrain[0][:3] == writer + ["results/toy/configs/pretrain.yaml"]
    assert json.loads(pretrain[0][3]) == DEFAULT["pretrain"] and pretrain[0][4:] == ["threads=2"]
    for rule, name, section in (("train_config", "train", DEFAULT["train"]["settings"]),
                                ("eval_config", "eval", DEFAULT["eval"])):
        argv = only(jobs, rule).argv
        assert argv[:3] == writer + [f"results/toy/configs/{name}.yaml"] and argv[4:] == ["--model", "{}"]
        assert json.loads(argv[3]) == section


def test_estimators_plans_the_new_kinds_beside_the_grid():
    """Target `estimators`: the new kinds train with the grid's settings and seeds, every one is evaluated in the
    six settings (the ordinary rules) and in its own, the base in every own setting, and the tables and figures
    read all five methods into results/toy/estimators."""
    out, jobs = dry_run("estimators")
    seeds, sets = DEFAULT["train"]["seeds"], DEFAULT["data"]["test_sets"]
    new = [f"{k}_seed{s}" for k in DEFAULT["estimators"]["modes"] for s in seeds]
    models = grid() + new
    for k in DEFAULT["estimators"]["modes"]:
        for s in seeds:
            argv = only(jobs, "train", variant=k, seed=s).argv
            argv = argv[argv.index("bash"):]                         # after the launcher's environment settings
            assert train_overrides(argv) == [f"mode.kind={k}", f"seed={s}"]
    assert planned(out)["train"] == len(models) - 1
    assert not any(j.rule == "export" for j in jobs)
    own = {"base": ["multiplex_sample,gumbel_sample"]} | {m: [f"{m.split('_')[0]}_sample"] for m in new}
    for model, settings in own.items():
        argv = only(jobs, "estimators_eval", model=model).argv
        assert values(argv, "--settings") == settings
        assert values(argv, "--out") == [f"results/toy/estimators/eval/{model}/{sets[0]}"]
    assert planned(out)["estimators_eval"] == len(own)
    est_evals = {f"results/toy/estimators/eval/{m}/{d}/summary.json" for m in own for d in sets}
    for rule, name, inputs in (("estimators_table", "table1", evals(models, sets)),
                               ("estimators_table", "table3_5", evals(models, sets)),
                               ("estimators_table2", None, {f"results/toy/ood/{m}.json" for m in models}),
                               ("estimators_sampled", None, evals(models, sets) | est_evals),
                               ("estimators_fig2", None, {f"results/toy/train/{m.replace('_seed', '/seed')}"
                                                          for m in models[1:]}),
                               ("estimators_figure", "fig3", evals(models, sets)),
                               ("estimators_figure", "fig4", evals(models, sets))):
        job = only(jobs, rule, **({"name": name} if name else {}))
        assert set(values(job.argv, "--inputs")) == inputs, rule
        kind = "figures" if "fig" in rule else "tables"
        stem = name or {"estimators_table2": "table2", "estimators_sampled": "sampled", "estimators_fig2": "fig2"}[rule]
        assert values(job.argv, "--out") == [f"results/toy/estimators/{kind}/{stem}"]
    assert not [o for j in jobs for o in j.output if o.startswith(("results/toy/tables", "results/toy/figures"))]


def test_study_plans_null_controls_and_levers(tmp_path):
    extra = tmp_path / "levers.yaml"
    extra.write_text("study:\n  modes: [soft]\n  seeds: [0, 1]\n  levers:\n    G16: {group_size: 16}\n"
                     "    slow: {optim: {lr: 1.0e-5}, steps: 120}\n")
    _, jobs = dry_run("study", "--configfile", str(extra))
    modes, seeds = DEFAULT["train"]["modes"], DEFAULT["train"]["seeds"]
    beyond = [k for k in DEFAULT["estimators"]["modes"] if k not in modes]   # the estimators' kinds
    kinds = modes + beyond
    levers = {**DEFAULT["study"]["levers"], "G16": None, "slow": None}     # Snakemake merges the two configs
    trains = [j for j in jobs if j.rule == "train" and not runs.parse_variant(j.wildcards["variant"]).scale]
    assert beyond and len(trains) == 2 * len(kinds) * len(seeds) + len(levers) * 2   # each kind and its null
    assert {j.rule for j in jobs} >= {"study", "study_curves", "diagnose_snr"}
    for m in kinds:
        for s in seeds:
            assert train_overrides(only(jobs, "train", variant=f"{m}-null", seed=s).argv) == [
                f"mode.kind={m}", "shuffle_advantages=true", f"seed={s}"]
    expected = {"G16": ["group_size=16"], "slow": ["optim.lr=1e-05", "steps=120"],
                **{name: sorted(f"{k}={json.dumps(v)}" for k, v in flat(lever).items())
                   for name, lever in DEFAULT["study"]["levers"].items()}}
    for name, overrides in expected.items():
        for s in (0, 1):
            job = only(jobs, "train", variant=f"soft-lever{name}", seed=s)
            got = train_overrides(job.argv)
            assert got[0] == "mode.kind=soft" and got[-1] == f"seed={s}" and sorted(got[1:-1]) == sorted(overrides)
            assert f"output_dir=results/toy/train/soft-lever{name}/seed{s}" in job.argv
    study = only(jobs, "study").argv
    models = grid() + [f"{m}_seed{s}" for m in beyond for s in seeds] + [
        f"{m}-null_seed{s}" for m in kinds for s in seeds] + [
        f"soft-lever{n}_seed{s}" for n in levers for s in (0, 1)]
    assert study[:3] == ["softcot", "tables", "study"]
    assert set(values(study, "--inputs")) == evals(models, TEST_SETS[:1]) | {"results/toy/study/snr.json"}
    curves = only(jobs, "study_curves").argv
    assert set(values(curves, "--inputs")) == {f"results/toy/train/{m.replace('_seed', '/seed')}" for m in models[1:]}
    snr = only(jobs, "diagnose_snr").argv
    assert values(snr, "--modes") == kinds and values(snr, "--model") == ["results/toy/base"]


def _diagnose_flags(argv: list[str]) -> dict:
    """The sampling flags of a planned `softcot diagnose` (what it shares with the training jobs)."""
    return {f: values(argv, f) for f in ("--prompts", "--group", "--max-cot-tokens", "--max-answer-tokens",
                                          "--micro-batch", "--template", "--modes", "--batches")}


def test_study_plans_the_scale_study_and_the_positions_split():
    """Each scaled base is pre-trained as `pretrain` with its overrides; every scale variant trains from its own
    base at the default settings; each base (the default's too) gets its diagnostics and evaluation; the
    positions split runs on the default's base; the gains, positions and scale outputs belong to `study`."""
    _, jobs = dry_run("study")
    study, scale = DEFAULT["study"], DEFAULT["study"]["scale"]
    bases = scale["bases"]
    assert len(bases) == 2 and {j.wildcards["scale"] for j in jobs if j.rule == "pretrain_scaled_base"} == set(bases)
    writer = ["python", "workflow/scripts/write_yaml.py"]
    for name, over in bases.items():
        cmds = only(jobs, "pretrain_scaled_base", scale=name).commands()
        assert cmds[0][:3] == writer + [f"results/toy/configs/pretrain-scale{name}.yaml"]
        assert json.loads(cmds[0][3]) == {**DEFAULT["pretrain"], **over} and cmds[0][4:] == ["threads=2"]
        assert cmds[1] == ["softcot", "pretrain", "--data", "results/toy/data", "--config",
                           f"results/toy/configs/pretrain-scale{name}.yaml", "--out", f"results/toy/base-scale{name}",
                           "--ckpt-dir", f"checkpoints/toy/base-scale{name}"]
        for m in study["modes"]:
            for s in scale["seeds"]:
                argv = only(jobs, "train", variant=f"{m}-scale{name}", seed=s).argv
                assert train_overrides(argv) == [f"mode.kind={m}", f"seed={s}"]          # the default settings
                assert f"model.name_or_path=results/toy/base-scale{name}" in argv
                assert f"output_dir=results/toy/train/{m}-scale{name}/seed{s}" in argv
    # the grid's runs start from the default's base
    assert "model.name_or_path=results/toy/base" in only(jobs, "train", variant="soft", seed=0).argv
    S = DEFAULT["train"]["settings"]
    sampling = {"--prompts": [str(S["prompts_per_step"])], "--group": [str(S["group_size"])],
                "--max-cot-tokens": [str(S["rollout"]["max_cot_tokens"])],
                "--max-answer-tokens": [str(S["rollout"]["max_answer_tokens"])],
                "--micro-batch": [str(S["micro_batch"])], "--template": [S["data"]["prompt_template"]],
                "--modes": study["modes"]}
    for base, path in [("base", "results/toy/base")] + [(f"base-scale{n}", f"results/toy/base-scale{n}") for n in bases]:
        argv = only(jobs, "diagnose_base", model=base).argv
        assert values(argv, "--model") == [path] and values(argv, "--out") == [f"results/toy/study/diagnose/{base}.json"]
        assert _diagnose_flags(argv) == {**sampling, "--batches": [str(scale["batches"])]}
        assert "--positions" not in argv and "--no-snr" not in argv
        evaluate = only(jobs, "evaluate_model", model=base).argv
        assert f"model.name_or_path={path}" in evaluate
    pos = only(jobs, "diagnose_positions").argv
    assert values(pos, "--model") == ["results/toy/base"] and "--no-snr" in pos
    assert _diagnose_flags(pos) == {**sampling, "--batches": [str(study["positions"]["batches"])]}
    assert f"positions={json.dumps(study['positions']['edges'])}" in pos
    assert only(jobs, "study_positions").argv[:5] == ["softcot", "study", "positions", "--inputs",
                                                      "results/toy/study/positions.json"]
    scale_models = ["base"] + [f"{m}_seed{s}" for m in study["modes"] for s in scale["seeds"]]
    for n in bases:
        scale_models += [f"base-scale{n}"] + [f"{m}-scale{n}_seed{s}" for m in study["modes"] for s in scale["seeds"]]
    scale_inputs = evals(scale_models, TEST_SETS[:1]) | {
        f"results/toy/study/diagnose/{b}.json" for b in ["base"] + [f"base-scale{n}" for n in bases]}
    for rule, out in (("study_scale", "results/toy/study/scale"), ("study_scale_figure", "results/toy/study/scale")):
        argv = only(jobs, rule).argv
        assert argv[:3] == ["softcot", "study", "scale" if rule == "study_scale" else "scale-figure"]
        assert set(values(argv, "--inputs")) == scale_inputs and values(argv, "--test-set") == TEST_SETS[:1]
        assert values(argv, "--out") == [out]
    gains = only(jobs, "study_gains").argv
    modes = DEFAULT["train"]["modes"] + [k for k in DEFAULT["estimators"]["modes"] if k not in DEFAULT["train"]["modes"]]
    assert values(gains, "--compare") == [f"{m}={m}-null" for m in modes] + [
        f"{m}-leverlong={m}-leverlongnull" for m in study["modes"]]
    gain_models = [runs.BASE] + [f"{m}{null}_seed{s}" for m in modes for null in ("", "-null")
                                 for s in DEFAULT["train"]["seeds"]] + [
        f"{m}-lever{L}_seed{s}" for L in ("long", "longnull") for m in study["modes"] for s in study["seeds"]]
    assert set(values(gains, "--inputs")) == evals(gain_models, TEST_SETS[:1]) | {
        f"results/toy/train/{m.replace('_seed', '/seed')}" for m in gain_models[1:]}
    assert {f"results/toy/study/{f}" for f in ("gains.md", "positions.md", "scale.md", "scale.png")} <= set(
        only(jobs, "study").input)


def test_scale_study_follows_its_config(tmp_path):
    """Other bases, seeds and modes; no lever has a null control; a preset plans no scale study."""
    extra = tmp_path / "scale.yaml"
    extra.write_text("study:\n  modes: [soft]\n  levers:\n    slow: {optim: {lr: 1.0e-5}}\n"
                     "  scale:\n    seeds: [3, 4]\n    batches: 5\n    bases:\n      w64: {hidden_size: 64, intermediate_size: 192}\n")
    _, jobs = dry_run("study", "--configfile", str(extra))
    rules = [j.rule for j in jobs]
    # Snakemake merges mappings: the default's bases stay, w64 joins them
    assert rules.count("pretrain_scaled_base") == 3 and rules.count("diagnose_base") == 4
    for s in (3, 4):
        assert "model.name_or_path=results/toy/base-scalew64" in only(jobs, "train", variant="soft-scalew64", seed=s).argv
        assert "model.name_or_path=results/toy/base" in only(jobs, "train", variant="soft", seed=s).argv
    assert not [j for j in jobs if j.rule == "train" and j.wildcards["variant"].startswith(("hard-scale", "fuzzy-scale"))]
    assert values(only(jobs, "diagnose_base", model="base-scalew64").argv, "--batches") == ["5"]
    assert json.loads(only(jobs, "pretrain_scaled_base", scale="w64").commands()[0][3]) == {
        **DEFAULT["pretrain"], "hidden_size": 64, "intermediate_size": 192}
    assert "soft-leverslow" in values(only(jobs, "study_gains").argv, "--compare")      # no null lever: alone
    _, jobs = dry_run("study", "--configfile", "config/presets/llama3b_gsm8k.yaml")
    assert not {"pretrain_scaled_base", "diagnose_base", "study_scale", "study_scale_figure"} & {j.rule for j in jobs}
    assert "diagnose_positions" in {j.rule for j in jobs}


def test_a_scale_variant_needs_its_base_configured():
    rc, out = smk("results/toy/train/soft-scalexyz/seed0", "-n", "--cores", "1", "--nolock")
    assert rc != 0 and "study.scale.bases has no base 'xyz'" in out, out[-2000:]


def test_ablation_variants_train_with_their_mode_parameter():
    _, jobs = dry_run("fig5", "table6", "table8")
    ab = DEFAULT["ablations"]
    for param in ("gamma", "tau"):
        for v in ab[param]:
            for s in ab["seeds"]:
                job = only(jobs, "train", variant=f"{ab['mode']}-{param}{v}", seed=s)
                assert train_overrides(job.argv) == [f"mode.kind={ab['mode']}", f"mode.{param}={v}", f"seed={s}"]


def test_config_values_reach_the_commands_as_single_arguments(tmp_path):
    """Config strings with spaces, quotes and newlines are shell-quoted: each reaches its command whole."""
    template = "Q: it's {question} \"now\"\nA:"
    extra = tmp_path / "quotes.yaml"
    extra.write_text(yaml.safe_dump({"train": {"settings": {"data": {"prompt_template": template}}},
                                     "study": {"modes": ["soft"], "seeds": [0],
                                               "levers": {"P": {"data": {"prompt_template": template}}}}}))
    _, jobs = dry_run("study", "--configfile", str(extra))
    assert json.loads(only(jobs, "train_config").argv[3])["data"]["prompt_template"] == template
    (override,) = [a for a in train_overrides(only(jobs, "train", variant="soft-leverP", seed=0).argv)
                   if a.startswith("data.")]
    key, raw = override.split("=", 1)
    assert key == "data.prompt_template" and yaml.safe_load(raw) == template
    assert values(only(jobs, "diagnose_snr").argv, "--template") == [template]


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_dry_run(preset):
    path = ROOT / "config" / "presets" / preset
    cfg = resolve([ROOT / "config.yaml"], [path], {})
    res = f"results/{cfg['experiment']}"
    _, jobs = dry_run("--configfile", f"config/presets/{preset}")
    rules = [j.rule for j in jobs]
    assert rules.count("train") == len(cfg["train"]["modes"]) * len(cfg["train"]["seeds"])
    assert rules.count("train") == 9 or preset.startswith("smollm2")
    assert "pretrain_base" not in rules and "toy_data" not in rules
    for name in ("train_config", "eval_config"):
        argv = only(jobs, name).argv
        section = cfg["train"]["settings"] if name == "train_config" else cfg["eval"]
        assert json.loads(argv[3]) == section and json.loads(values(argv, "--model")[0]) == cfg["base"]["model"]
    for name, spec in cfg["data"]["sets"].items():
        if name not in ("train", "val", *cfg["data"]["test_sets"], *cfg["data"]["ood_sets"]):
            continue
        argv = only(jobs, "prepare_benchmark", dataset=name).argv
        assert argv[:4] == ["softcot", "prepare-data", "--benchmark", spec["benchmark"]]
        assert values(argv, "--out") == [f"{res}/data/{name}.jsonl"]
        for key in ("split", "path", "limit", "seed", "revision"):
            if spec.get(key) is None:
                assert f"--{key}" not in argv
            else:
                assert values(argv, f"--{key}") == [str(spec[key])]
    model = cfg["base"]["model"]["name_or_path"]
    assert f"model.name_or_path={model}" in only(jobs, "train", variant="hard", seed=0).argv
    if "ood" in rules:      # a job per model (else the evaluation job runs it, with the eval config's model)
        ood = only(jobs, "ood", model="base").argv   # the base's out-of-domain job loads it at its revision
        assert values(ood, "--model") == [f"base={model}"]
        assert values(ood, "--revision") == [f"base={cfg['base']['model']['revision']}"]
        assert "--revision" not in only(jobs, "ood", model="hard_seed0").argv
    else:
        assert "evaluate_model" in rules
    table = only(jobs, "table1").argv
    assert values(table, "--test-sets") == cfg["data"]["test_sets"]
    if cfg["preset"]:                       # the paper's rows beside ours
        assert values(table, "--preset") == [cfg["preset"]]
    else:
        assert "--preset" not in table


def test_a_later_configfile_and_config_override_a_preset(tmp_path):
    """config.yaml < paper base < preset overlay < a later --configfile < --config, key by key."""
    extra = tmp_path / "extra.yaml"
    extra.write_text("train:\n  seeds: [0]\n  settings:\n    optim: {lr: 1.0e-7}\ndata:\n  test_sets: [gsm8k]\n")
    _, jobs = dry_run("all", "--configfile", "config/presets/llama3b_math.yaml", str(extra),
                      "--config", "experiment=mine")
    settings = json.loads(only(jobs, "train_config").argv[3])
    assert settings["optim"] == {"lr": 1e-7, "warmup_steps": 20, "schedule": "cosine", "grad_clip": None}
    assert settings["rollout"]["max_cot_tokens"] == 512 and settings["steps"] == 4000    # overlay, base
    assert sorted(j.wildcards["variant"] for j in jobs if j.rule == "train") == ["fuzzy", "hard", "soft"]
    assert only(jobs, "prepare_benchmark", dataset="train").argv[:4] == ["softcot", "prepare-data", "--benchmark",
                                                                         "math"]
    table = only(jobs, "table1").argv
    assert values(table, "--test-sets") == ["gsm8k"] and values(table, "--preset") == ["llama3b_math"]
    assert values(table, "--out") == ["results/mine/tables/table1"]


@pytest.mark.parametrize("preset", [p for p in PRESETS if not p.startswith("smollm2")])
def test_slurm_profile_plans_gpus_on_training_and_evaluation(preset):
    rc, out = smk("-n", "--forceall", "--nolock", "-j", "10", "--executor", "slurm", "--workflow-profile",
                  "profiles/slurm", "--configfile", f"config/presets/{preset}")
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
    ({"n_samples": 32, "model": {"dtype": "bf16", "name_or_path": "own"}},                     # eval_config, preset
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
    ("study:\n  scale:\n    bases:\n      big: {hidden_sizee: 3}\n", "study.scale.bases.big.hidden_sizee"),
    ("study:\n  scale:\n    bases:\n      big: {hidden_size: 100, num_heads: 8}\n", "study.scale.bases.big.hidden_size"),
    ("study:\n  scale:\n    bases:\n      d-1: {hidden_size: 64}\n", "d-1"),
    ("study:\n  positions: {edges: [4, 2]}\n", "study.positions.edges"),
    ("extends: nosuch.yaml\n", "nosuch.yaml: config file not found"),
]


@pytest.mark.parametrize("text,key", BAD_CONFIGS, ids=[k for _, k in BAD_CONFIGS])
def test_bad_config_is_rejected_before_any_job_naming_the_key(tmp_path, text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    rc, out = smk("-n", "--cores", "1", "--configfile", str(bad))
    assert rc != 0
    assert key in out, out[-2000:]


def test_a_bad_config_override_gets_the_config_files_message(tmp_path):
    """--config values arrive as strings; the workflow types them as a config file would, so the same bad value
    fails with the same message either way."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  settings:\n    rollout: {max_cot_tokens: 0}\n")
    expected = "config key train.settings.rollout.max_cot_tokens: got 0; must be >= 1"
    rc, out = smk("-n", "--cores", "1", "--configfile", str(bad))
    assert rc != 0 and expected in out, out[-2000:]
    rc, out = smk("-n", "--cores", "1", "--config", "train={settings: {rollout: {max_cot_tokens: 0}}}")
    assert rc != 0 and expected in out, out[-2000:]


def test_lint_passes():
    rc, out = smk("--lint")
    assert rc == 0, out[-3000:]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """A copy of the repo's workflow files, run whole on config/ci.yaml, in processes that cannot import the
    real-model extras (the embedded default needs none of them)."""
    from tests import without_real_extras
    work = tmp_path_factory.mktemp("wf")
    for name in ("Snakefile", "config.yaml", "workflow", "config", "profiles", "envs", "README.md"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    rc, out = smk("--cores", "2", "--configfile", "config/ci.yaml", cwd=work, timeout=1500, env=without_real_extras.env())
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


def test_docs_target_writes_the_results_document(smoke):
    """`snakemake docs` after a run: docs/results.md with the findings, the tables and the figures beside it."""
    rc, out = smk("docs", "--cores", "2", "--configfile", "config/ci.yaml", cwd=smoke)
    assert rc == 0, out[-3000:]
    assert planned(out) == {"docs": 1}
    text = (smoke / "docs" / "results.md").read_text()
    assert text.startswith("# Results: experiment `ci`") and "## The paper's findings, tested on this run" in text
    assert "#### Table 1 - hard inference" in text and "greedy pass@1 under hard inference (%) moves from" in text
    for f in ("fig2", "fig3", "fig4"):
        assert (smoke / "docs" / "figures" / f"{f}.png").read_bytes() == (
            smoke / "results" / "ci" / "figures" / f"{f}.png").read_bytes()
    readme = (smoke / "README.md").read_text()          # its results digest, from the same tables
    assert f"{digest.BEGIN}\nExperiment `ci` (seeds 0)" in readme and "| hard | " in readme
    outside = lambda t: (t.split(digest.BEGIN)[0], t.split(digest.END)[1])     # noqa: E731
    assert outside(readme) == outside((ROOT / "README.md").read_text())        # the rest left as it was


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
            out = subprocess.run(["pgrep", "-f", "output_dir=results/ci/train/hard/seed0"], capture_output=True,
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


def test_estimators_target_on_the_smoke_run_adds_the_new_kinds(smoke):
    """`snakemake estimators` on the smoke run's results trains and evaluates only the new kinds, and its tables
    and figures show all five training methods; the default target's outputs stay as they were."""
    before = {p: p.stat().st_mtime_ns for p in (smoke / "results" / "ci" / "tables").iterdir()}
    rc, out = smk("estimators", "--cores", "2", "--configfile", "config/ci.yaml", cwd=smoke, timeout=1500)
    assert rc == 0, out[-5000:]
    assert {(j.rule, j.wildcards.get("variant")) for j in parse_jobs(out) if j.rule == "train"} == {
        ("train", "multiplex"), ("train", "gumbel")}
    est = smoke / "results" / "ci" / "estimators"
    methods = ["no finetune", "hard", "fuzzy", "soft", "multiplex", "gumbel"]
    for t in ("table1", "table2", "table3_5"):
        rows = [line.split(" | ")[0][2:] for line in (est / "tables" / f"{t}.md").read_text().splitlines()
                if line.startswith("| ") and not line.startswith("| method")]
        assert rows[:6] == methods, (t, rows)
    lines = (est / "tables" / "sampled.md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert "multiplex_sample S1" in header and "gumbel_sample S1" in header
    for f in ("fig2", "fig3", "fig4"):
        assert (est / "figures" / f"{f}.png").stat().st_size > 0
    assert {p: p.stat().st_mtime_ns for p in (smoke / "results" / "ci" / "tables").iterdir()} == before
    rc, out = smk("estimators", "-n", "--cores", "2", "--configfile", "config/ci.yaml", cwd=smoke)
    assert rc == 0 and "Nothing to be done" in out, out[-2000:]
