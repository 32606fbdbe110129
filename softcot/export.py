"""Export a trained run as a standard Hugging Face checkpoint: "train soft, deploy hard".

    softcot export --run results/train/soft_seed0 --out results/export/soft_seed0

The result is plain transformers: safetensors weights, tokenizer, generation config and a model card
(README.md) naming the training mode, its settings, the exact config, the code version and the seed.
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
from softcot.schema import DEFAULT_TAU

CARD = """---
library_name: transformers
tags: [softcot, reinforcement-learning, chain-of-thought, {kind}-tokens]
---
# {name}

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

Inference is ordinary hard decoding (`model.generate`); the paper finds soft/fuzzy training with hard
inference the best deployment. Prompt used in training:

```
{template}
```

## Exact training config

```yaml
{config}```
"""


def export(run_dir: str | Path, out_dir: str | Path) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").exists():
        raise DataError(f"{model_dir}: no trained model here; run `softcot train` first")
    if not list(model_dir.glob("*.safetensors")):
        raise DataError(f"{model_dir}: no .safetensors weights; softcot exports safetensors only")
    cfg = load_yaml((run_dir / "config.yaml").read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    mode = cfg["mode"]
    with atomic_dir(out_dir) as tmp:
        for f in model_dir.iterdir():
            if f.suffix in (".safetensors", ".json", ".jinja", ".model", ".txt") and f.name != "best.json":
                shutil.copy2(f, tmp / f.name)
        _ensure_generation_config(tmp)
        (tmp / "README.md").write_text(CARD.format(
            name=out_dir.name, version=__version__, kind=mode["kind"],
            tau=mode["tau"] if mode["tau"] is not None else DEFAULT_TAU[mode["kind"]], gamma=mode["gamma"],
            steps=cfg["steps"], B=cfg["prompts_per_step"], G=cfg["group_size"], lr=cfg["optim"]["lr"],
            seed=cfg["seed"], best=summary.get("best_val_greedy_pass1"), best_step=summary.get("best_step"),
            base=cfg["model"]["name_or_path"], template=cfg["data"]["prompt_template"],
            config=yaml.safe_dump(cfg, sort_keys=True)))
        (tmp / "softcot_training.json").write_text(json.dumps({"config": cfg, "summary": summary,
                                                               "softcot_version": __version__}, indent=2))
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
    args = ap.parse_args(argv)
    print(export(args.run, args.out))
    return 0
