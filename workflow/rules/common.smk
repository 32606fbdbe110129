# Helpers, wildcard constraints, shared constants and config validation. Rules live in the other .smk files.

import json
import os
import shlex
from pathlib import Path

from snakemake.common.configfile import load_configfile
from snakemake.utils import validate

from softcot import runs
from softcot.config_layers import resolve


def _resolve_config_layers():
    """Rebuild the config so that each --configfile's `extends:` base (a preset overlay's config/paper_base.yaml)
    lies beneath that file: config.yaml < base < overlay < later --configfile < --config. Snakemake itself
    knows no such key. The dict is updated in place: Snakemake and every helper hold this same object."""
    cli_files = list(workflow.overwrite_configfiles)
    own_files = [] if workflow.config_settings.replace_workflow_config else workflow.configfiles[len(cli_files) :]
    layered = resolve(own_files, cli_files, workflow.config_settings.config, loader=load_configfile)
    config.clear()
    config.update(layered)


_resolve_config_layers()
validate(config, "../schemas/config.schema.yaml")

# A second, semantic check with softcot's own typed configs (e.g. k > n, tau <= 0, missing files):
# it runs when the DAG is built, so a bad config fails before any job starts, naming the key.
from softcot.workflow_config import check_config, scaled_pretrain, train_config

check_config(config)
# The train jobs' typed config (train.settings over softcot.schema's defaults): rules read training values,
# e.g. the diagnostics' rollout budget, from here, so the defaults have one source.
TRAIN = train_config(config)

EXP = config["experiment"]
RES = f"results/{EXP}"
CKPT = f"checkpoints/{EXP}"
LOGS = f"logs/{EXP}"
BENCH = f"benchmarks/{EXP}"
TOY_SPLITS = ["pretrain", "train", "val", "test", "test_hard", "ood", "ood_train"]  # softcot.toy.SPLITS
MODES = config["train"]["modes"]
SEEDS = config["train"]["seeds"]
SETTINGS = config["eval"]["settings"]
TEST_SETS = config["data"]["test_sets"]
OOD_SETS = config["data"]["ood_sets"]
ENV = "../../envs/softcot.yaml"
# envs/softcot.yaml installs the package from ${SOFTCOT_ROOT}: the repository that holds this workflow, as an
# absolute path, because Snakemake builds the environment from a copy of the file in another folder.
os.environ.setdefault("SOFTCOT_ROOT", str(Path(workflow.basedir).resolve()))


# Arguments of the commands that read evaluations: the figures' test sets; the tables' (and the study's) also
# name the paper preset, whose own rows they print beside ours.
FIG_ARGS = "--test-sets " + " ".join(TEST_SETS)
TABLE_ENV_ARGS = FIG_ARGS + (f" --preset {config['preset']}" if config.get("preset") else "")


wildcard_constraints:
    variant=runs.VARIANT_RE,
    seed=runs.SEED_RE,
    model=runs.MODEL_RE,
    dataset=r"[A-Za-z0-9_]+",


def section(*keys):
    """A config section as a stable string: rules rerun only when the part they use changes."""
    node = config
    for k in keys:
        node = node[k]
    return json.dumps(node, sort_keys=True)


def is_toy():
    return config["data"]["source"] == "toy"


def base_model():
    """The base model: the pre-trained toy model's folder, or a hub id / local path from the preset."""
    return f"{RES}/base" if is_toy() else config["base"]["model"]["name_or_path"]


def base_inputs(wildcards=None):
    return [f"{RES}/base"] if is_toy() else []


def variant_overrides(variant):
    """The train command's overrides for a variant name (softcot.runs): 'fuzzy' -> mode.kind=fuzzy;
    'fuzzy-gamma1.0' -> also mode.gamma=1.0; 'soft-tau0.1' -> mode.tau=0.1; 'soft-null' -> the null control
    (advantages shuffled within each step: same noise, no signal); 'soft-leverB16' -> the training overrides
    of config study.levers.B16 (a flat or nested mapping)."""
    v = runs.parse_variant(variant)
    out = [f"mode.kind={v.kind}"]
    if v.null:
        out.append("shuffle_advantages=true")
    elif v.ablation:
        param, value = v.ablation
        out.append(f"mode.{param}={value}")
    elif v.lever:
        levers = config["study"]["levers"]
        if v.lever not in levers:
            known = sorted(levers)
            raise ValueError(f"variant {variant!r}: config study.levers has no lever {v.lever!r}; configured: {known}")
        out += [shlex.quote(f"{k}={json.dumps(val)}") for k, val in flatten(levers[v.lever])]
    return out


def flatten(d, prefix=""):
    """{'optim': {'lr': 1e-5}} -> [('optim.lr', 1e-5)]"""
    items = []
    for k, v in d.items():
        if isinstance(v, dict):
            items += flatten(v, f"{prefix}{k}.")
        else:
            items.append((f"{prefix}{k}", v))
    return items


def train_dir(model):
    """'soft-null_seed1' -> the training run's output directory results/<exp>/train/soft-null/seed1."""
    return f"{RES}/{runs.train_subdir(model)}"


def model_path(model):
    return base_of(model) if runs.parse_model(model).is_base else f"{train_dir(model)}/model"


def model_inputs(wildcards):
    return (
        base_inputs_of(wildcards.model) if runs.parse_model(wildcards.model).is_base else [train_dir(wildcards.model)]
    )


def base_of(model):
    """The base a model starts from (itself for a base): the default's base, or for a scale variant's run and a
    scaled base (softcot.runs: soft-scaled192_seed0, base-scaled192) the base pre-trained with
    study.scale.bases.<name> (rule pretrain_scaled_base)."""
    scale = runs.parse_model(model).base.scale
    if scale is None:
        return base_model()
    bases = config["study"]["scale"]["bases"]
    if not is_toy():
        raise ValueError(
            f"model {model!r}: config study.scale needs data.source toy (its bases are pre-trained "
            f"on the toy demos); this experiment reads {config['data']['source']}"
        )
    if scale not in bases:
        raise ValueError(
            f"model {model!r}: config study.scale.bases has no base {scale!r}; configured: {sorted(bases)}"
        )
    return f"{RES}/{runs.scaled_base(scale)}"


def base_inputs_of(model):
    """The pre-trained base a model needs as an input file (none for a preset's hub model)."""
    return [base_of(model)] if is_toy() else []


def all_kinds():
    """Every training kind: the grid's, then the estimators' beyond it (their models, null controls, diagnostics)."""
    return MODES + [k for k in config["estimators"]["modes"] if k not in MODES]


def study_variants():
    nulls = [runs.null_variant(m) for m in all_kinds()]
    levers = [runs.lever_variant(m, name) for name in config["study"]["levers"] for m in config["study"]["modes"]]
    return nulls, levers


def study_models():
    nulls, levers = study_variants()
    return [runs.model_name(v, s) for v in nulls for s in SEEDS] + [
        runs.model_name(v, s) for v in levers for s in config["study"]["seeds"]
    ]


def grid_models():
    return [runs.BASE] + [runs.model_name(m, s) for m in MODES for s in SEEDS]


def ablation_models(param):
    ab = config["ablations"]
    return [runs.model_name(runs.ablation_variant(ab["mode"], param, v), s) for v in ab[param] for s in ab["seeds"]]


def res(rule_name, key, default=None):
    return config["resources"][rule_name].get(key, default)


# The estimators comparison (workflow/rules/estimators.smk).
from softcot.schema import OWN_SETTINGS

EST = f"{RES}/estimators"


def estimator_models():
    """The base, the default grid's models, and every seed of each `estimators.modes` kind, once each."""
    return [runs.BASE] + [runs.model_name(m, s) for m in all_kinds() for s in SEEDS]


def own_setting_models():
    """The models evaluated in own settings: the base, and the trained models of kinds that have one."""
    return [runs.BASE] + [m for m in estimator_models()[1:] if runs.parse_model(m).variant.kind in OWN_SETTINGS]


def own_settings(model):
    """'multiplex_seed0' -> 'multiplex_sample'; the base -> the own settings of every `estimators.modes` kind."""
    kinds = config["estimators"]["modes"] if model == runs.BASE else [runs.parse_model(model).variant.kind]
    settings = [OWN_SETTINGS[k] for k in kinds if k in OWN_SETTINGS]
    if not settings:
        raise ValueError(f"model {model!r}: no own inference setting; kinds with one: {sorted(OWN_SETTINGS)}")
    return ",".join(settings)


def default_targets():
    t = [f"{RES}/tables/{name}.md" for name in ("table1", "table2", "table3_5")]
    t += [f"{RES}/figures/{name}.png" for name in ("fig2", "fig3", "fig4")]
    t += [f"{RES}/export/{m}/seed{s}" for m in MODES for s in SEEDS]
    return t


def benchmark_args(dataset):
    """CLI arguments of `softcot prepare-data` for one configured set, shell-quoted."""
    spec = config["data"]["sets"].get(dataset)
    if spec is None:
        raise ValueError(f"data.sets has no entry {dataset!r}; configured: {sorted(config['data']['sets'])}")
    args = ["--benchmark", spec["benchmark"]]
    for key, flag in (
        ("split", "--split"),
        ("path", "--path"),
        ("limit", "--limit"),
        ("seed", "--seed"),
        ("on_bad_row", "--on-bad-row"),
        ("revision", "--revision"),
    ):
        if spec.get(key) is not None:
            args += [flag, str(spec[key])]
    return shlex.join(args)


def ood_base_args(model):
    """--gguf and --revision of the hub base model for `softcot ood` (nothing for the toy or a trained model)."""
    if is_toy() or model != runs.BASE:
        return ""
    base = config["base"]["model"]
    pairs = [(flag, base.get(key)) for flag, key in (("--gguf", "gguf_file"), ("--revision", "revision"))]
    return shlex.join(a for flag, v in pairs if v for a in (flag, f"{model}={v}"))


def eval_inputs(models, datasets=None):
    return expand(f"{RES}/eval/{{model}}/{{dataset}}/summary.json", model=models, dataset=datasets or TEST_SETS)


def figure_style(name):
    """The `figures` section for one figure: shared settings, then that figure's own overrides."""
    shared = {k: v for k, v in config["figures"].items() if not k.startswith("fig")}
    return json.dumps({**shared, **config["figures"].get(name, {})}, sort_keys=True)


def docs_extras():
    """Optional results docs/results.md reads when they exist (ablation tables, study/, estimators/)."""
    from softcot.docs import extra_inputs

    return extra_inputs(RES)


def docs_figures():
    """The figure copies docs/results.md shows: the default figures and every optional one present."""
    from softcot.docs import figure_copies

    names = {f"{f}.png" for f in ("fig2", "fig3", "fig4")} | set(figure_copies(RES).values())
    return [f"docs/figures/{n}" for n in sorted(names)]
