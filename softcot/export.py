"""Export a trained run as a standard Hugging Face checkpoint: "train soft, deploy hard".

    softcot export --run results/train/soft_seed0 --out results/export/soft_seed0 [--eval .../summary.json ...]

The result is plain transformers: safetensors weights, tokenizer, generation config and a model card
(README.md) naming the training mode, its settings, the exact config, the code commit and the seed, with the
Hub's metadata (base_model, datasets, license, and the evaluation results of training's validation and of
any `--eval` summaries as a model-index).
`AutoModelForCausalLM.from_pretrained(out)` + `generate()` run it with ordinary hard decoding; no
softcot code is needed to use the model.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

from softcot import __version__
from softcot.config import load_yaml
from softcot.io import DataError, atomic_dir
from softcot.provenance import provenance
from softcot.schema import DEFAULT_TAU

BODY = """# {name}

Fine-tuned with **softcot** {version} (reproduction of "Soft Tokens, Hard Truths", arXiv 2509.19170):
reinforcement learning (RLOO, exact densities) of the chain of thought with **{kind}** CoT tokens.

| setting | value |
|---|---|
| training CoT mode | {kind} |
| CoT temperature tau | {tau} |
| noise scale gamma (sigma = gamma * rms(E)) | {gamma} |
| steps | {steps} |
| prompts x rollouts per step | {B} x {G} |
| learning rate | {lr} |
| seed | {seed} |
| best greedy validation pass@1 | {best} (step {best_step}) |
| base model | `{base}` |
| code commit | `{commit}` |

Inference is ordinary hard decoding (`model.generate`); the paper finds soft/fuzzy training with hard
inference the best deployment. Prompt used in training:

```
{template}
```

## Exact training config

```yaml
{config}```
"""

# Licenses of the paper's base models as their own model cards state them; a trained model inherits its base's.
# A base pre-trained by softcot itself (the embedded default) is under the project's MIT license.
BASE_LICENSES = {"meta-llama/Llama-3.2-3B-Instruct": {"license": "llama3.2"},
                 "meta-llama/Llama-3.1-8B-Instruct": {"license": "llama3.1"},
                 "Qwen/Qwen2.5-3B-Instruct": {"license": "other", "license_name": "qwen-research"},
                 "smollm2": {"license": "apache-2.0"}}


def _license(base: str) -> dict:
    if base in BASE_LICENSES:
        return BASE_LICENSES[base]
    if (Path(base) / "pretrain_config.json").exists():            # softcot pretrain's own base model
        return {"license": "mit"}
    return {"license": "other", "license_name": "same-as-base-model"}


def _dataset(path: str | None) -> tuple[str, str, str | None]:
    """(name, type, split) of a data file for the card: the records' `source`, and for a known benchmark its hub
    id and the split softcot reads by default (None otherwise)."""
    name = Path(path).stem if path else "unknown"
    try:
        with open(path, encoding="utf-8") as f:
            name = json.loads(f.readline()).get("source") or name
    except (OSError, TypeError, ValueError):
        pass
    from softcot.benchmarks import BENCHMARKS
    spec = BENCHMARKS.get(name)
    return name, (spec.hub_id if spec and spec.hub_id else name), (spec.split if spec else None)


def eval_results(cfg: dict, summary: dict, evals: list[Path]) -> list[dict]:
    """The card's evaluation results (percent): the best greedy validation pass@1 of training, and hard greedy
    pass@1 and hard sample pass@n of each `softcot evaluate` summary given. The Hub groups results by data set
    type and split, so each test set is told apart by its split: the benchmark's, else the test set's name."""
    out = []
    name, typ, _ = _dataset(cfg["data"].get("val") or cfg["data"].get("train"))
    if summary.get("best_val_greedy_pass1") is not None:
        out.append({"task_type": "text-generation", "dataset_name": f"{name} (validation)", "dataset_type": typ,
                    "dataset_split": "validation", "metric_type": "pass@1",
                    "metric_name": "greedy pass@1 (%), best checkpoint",
                    "metric_value": round(100 * summary["best_val_greedy_pass1"], 2)})
    for p in evals:
        s = json.loads(Path(p).read_text())
        _, typ, split = _dataset(s.get("config", {}).get("data"))
        name = Path(p).parent.name                                   # the workflow's name of the test set
        for setting, what in (("hard_greedy", "pass1"), ("hard_sample", "passn")):
            v = s["settings"].get(setting)
            if not v:
                continue
            k = max(int(x) for x in v["pass_at_k"])
            value = v["pass1"] if what == "pass1" else v["pass_at_k"][str(k)]
            metric = "pass@1" if what == "pass1" else f"pass@{k}"
            out.append({"task_type": "text-generation", "dataset_name": name, "dataset_type": typ,
                        "dataset_split": split or name, "metric_type": metric,
                        "metric_name": f"{setting.replace('_', ' ')} {metric} (%)", "metric_value": round(100 * value, 2)})
    return out


def card_metadata(cfg: dict, summary: dict, evals: list[Path], license: dict | None = None) -> dict:
    """The model card's YAML metadata as plain values."""
    base = cfg["model"]["name_or_path"]
    return {"library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["softcot", "reinforcement-learning", "chain-of-thought", f"{cfg['mode']['kind']}-tokens"],
            "base_model": base, "datasets": [_dataset(cfg["data"].get("train"))[1]],
            **(license or _license(base)), "model_name": f"softcot-{cfg['mode']['kind']}-seed{cfg['seed']}",
            "eval_results": eval_results(cfg, summary, evals)}


def render_card(meta: dict, body: str) -> str:
    """README.md: YAML metadata, then the body. Through huggingface_hub's ModelCardData where it is installed
    (the Hub's own field names and model-index layout), else the same fields written as plain YAML."""
    try:
        from huggingface_hub import EvalResult, ModelCard, ModelCardData
    except ImportError:
        return "---\n" + yaml.safe_dump(_plain_metadata(meta), sort_keys=False) + "---\n" + body
    data = ModelCardData(**{k: v for k, v in meta.items() if k != "eval_results"},
                         eval_results=[EvalResult(**e) for e in meta["eval_results"]] or None)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n" + body))


def _plain_metadata(meta: dict) -> dict:
    """The metadata with eval results as the Hub's model-index (what ModelCardData writes: one result per task
    and data set, holding its metrics)."""
    out = {k: v for k, v in meta.items() if k not in ("eval_results", "model_name")}
    results: dict[tuple, dict] = {}
    for e in meta["eval_results"]:
        key = (e["task_type"], e["dataset_type"], e["dataset_split"])
        results.setdefault(key, {"task": {"type": e["task_type"]}, "dataset": {
            "name": e["dataset_name"], "type": e["dataset_type"], "split": e["dataset_split"]}, "metrics": []})
        results[key]["metrics"].append({"type": e["metric_type"], "value": e["metric_value"], "name": e["metric_name"]})
    if results:
        out["model-index"] = [{"name": meta["model_name"], "results": list(results.values())}]
    return out


def export(run_dir: str | Path, out_dir: str | Path, evals: list[str | Path] = (), license: dict | None = None) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").exists():
        raise DataError(f"{model_dir}: no trained model here; run `softcot train` first")
    if not list(model_dir.glob("*.safetensors")):
        raise DataError(f"{model_dir}: no .safetensors weights; softcot exports safetensors only")
    for p in evals:
        if not Path(p).is_file():
            raise DataError(f"{p}: no evaluation summary here; run `softcot evaluate` on this model first, or "
                            f"leave out --eval")
    cfg = load_yaml((run_dir / "config.yaml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    mode = cfg["mode"]
    prov = {"code_commit": summary["code_commit"], "code_dirty": summary.get("code_dirty")} \
        if summary.get("code_commit") else provenance()
    commit = prov["code_commit"] + (" (with uncommitted changes)" if prov["code_dirty"] else "")
    with atomic_dir(out_dir) as tmp:
        for f in model_dir.iterdir():
            if f.suffix in (".safetensors", ".json", ".jinja", ".model", ".txt") and f.name != "best.json":
                shutil.copy2(f, tmp / f.name)
        _ensure_generation_config(tmp)
        body = BODY.format(
            name=out_dir.name, version=__version__, kind=mode["kind"],
            tau=mode["tau"] if mode["tau"] is not None else DEFAULT_TAU[mode["kind"]], gamma=mode["gamma"],
            steps=cfg["steps"], B=cfg["prompts_per_step"], G=cfg["group_size"], lr=cfg["optim"]["lr"],
            seed=cfg["seed"], best=summary.get("best_val_greedy_pass1"), best_step=summary.get("best_step"),
            base=cfg["model"]["name_or_path"], commit=commit, template=cfg["data"]["prompt_template"],
            config=yaml.safe_dump(cfg, sort_keys=True))
        (tmp / "README.md").write_text(render_card(card_metadata(cfg, summary, [Path(p) for p in evals], license),
                                                   body))
        (tmp / "softcot_training.json").write_text(json.dumps({"config": cfg, "summary": summary,
                                                               "softcot_version": __version__,
                                                               **prov}, indent=2))
    return out_dir


def _ensure_generation_config(d: Path) -> None:
    if (d / "generation_config.json").exists():
        return
    from transformers import AutoConfig, GenerationConfig
    gc = GenerationConfig.from_model_config(AutoConfig.from_pretrained(d))
    gc.save_pretrained(d)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a `softcot train` output_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--eval", nargs="*", default=[], metavar="SUMMARY",
                    help="softcot evaluate summary.json files of this model: their results go into the card")
    ap.add_argument("--license", help="the card's license id (default: the base model's, see BASE_LICENSES)")
    args = ap.parse_args(argv)
    print(export(args.run, args.out, args.eval, {"license": args.license} if args.license else None))
    return 0
