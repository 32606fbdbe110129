"""The `softcot` command: one sub-command per stage, each a thin wrapper over a library module.

    softcot train     --config FILE [key=value ...]     RL training (hard / soft / fuzzy), accelerate-aware
    softcot export    --run DIR --out DIR               a standard HF checkpoint ("train soft, deploy hard")
    softcot evaluate  --model DIR --data FILE ...       the six inference settings, pass@k, entropy
    softcot ood       --model NAME=DIR --data B=FILE    multiple-choice accuracy and NLL (HellaSwag, ARC, MMLU)
    softcot generate  --model DIR "question" ...        answer a few questions, showing the CoT
    softcot prepare-data --benchmark NAME --out FILE    normalise a benchmark to the record schema
    softcot toy-data  --config FILE --out DIR           the embedded default's procedural tasks
    softcot pretrain  --data DIR --config FILE --out DIR --ckpt-dir DIR   the embedded default's tiny base model
    softcot diagnose  --model DIR --data FILE --out F   gradient signal-to-noise of each CoT mode
    softcot validate-config --kind train|eval FILE [key=value ...]    check a config without running it
    softcot plan      --config FILE [key=value ...]     per-GPU memory of a training config (DDP or FSDP)
    softcot tables / figures                            the paper's tables and figures from results/
    softcot docs      --results DIR --out FILE          docs/results.md: findings, tables, figures of one experiment
    softcot study gains|positions|scale|scale-figure    the study's own tables and figures from results/

Every sub-command prints its own --help. A bad config value or input row ends any sub-command with one
line on stderr naming the file, key or row, and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from softcot.config import ConfigError
from softcot.io import DataError

COMMANDS = {
    "train": "softcot.trainer",
    "export": "softcot.export",
    "evaluate": "softcot.evaluate",
    "ood": "softcot.ood",
    "generate": "softcot.generate",
    "prepare-data": "softcot.benchmarks",
    "toy-data": "softcot.toy",
    "pretrain": "softcot.pretrain",
    "tables": "softcot.tables",
    "figures": "softcot.figures",
    "docs": "softcot.docs",
    "diagnose": "softcot.diagnose",
    "validate-config": "softcot.cli",
    "plan": "softcot.plan",
    "study": "softcot.study",
}
CONFIG_KINDS = {"train": "TrainConfig", "eval": "EvalConfig", "pretrain": "PretrainConfig", "ood": "OODConfig",
                "diagnose": "DiagnoseConfig"}


def validate_config(argv: list[str]) -> int:
    """softcot validate-config --kind KIND FILE [key=value ...]: build the typed config, run nothing."""
    from softcot import schema
    from softcot.config import load_config
    ap = argparse.ArgumentParser(prog="softcot validate-config", description="Check a config without running it.")
    ap.add_argument("--kind", choices=sorted(CONFIG_KINDS), default="train")
    ap.add_argument("config")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    load_config(getattr(schema, CONFIG_KINDS[args.kind]), args.config, args.overrides)
    print(f"{args.config}: ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv[0] in ("-V", "--version"):
        from softcot import __version__
        print(__version__)
        return 0
    cmd, rest = argv[0], argv[1:]
    # Hugging Face's own bars (weight loading, shard writing) would flood a job's log; softcot prints its own
    # progress lines (softcot.progress).
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if cmd not in COMMANDS:
        print(f"softcot: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        if cmd == "validate-config":
            return validate_config(rest)
        module = importlib.import_module(COMMANDS[cmd])
        return int(module.main(rest) or 0)
    except (ConfigError, DataError) as e:
        print(f"softcot {cmd}: {'data' if isinstance(e, DataError) else 'config'} error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
