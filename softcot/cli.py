"""The `softcot` command: one sub-command per stage, each a thin wrapper over a library module.

    softcot train     --config FILE [key=value ...]     RL training (hard / soft / fuzzy), accelerate-aware
    softcot export    --run DIR --out DIR               a standard HF checkpoint ("train soft, deploy hard")
    softcot evaluate  --model DIR --data FILE ...       the six inference settings, pass@k, entropy
    softcot ood       --model DIR --data FILE ...       multiple-choice accuracy and NLL (HellaSwag, ARC, MMLU)
    softcot generate  --model DIR "question" ...        answer a few questions, showing the CoT
    softcot prepare-data --benchmark NAME --out FILE    normalise a benchmark to the record schema
    softcot toy-data  --config FILE --out DIR           the embedded default's procedural tasks
    softcot pretrain  --config FILE --out DIR           the embedded default's tiny base model
    softcot tables / figures / diagnose                 used by the workflow

Every sub-command prints its own --help.
"""
from __future__ import annotations

import importlib
import sys

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
    "diagnose": "softcot.diagnose",
    "validate-config": "softcot.config",
}


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
    if cmd not in COMMANDS:
        print(f"softcot: unknown command {cmd!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[cmd])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
