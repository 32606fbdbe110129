"""RL gain against the training budget, on the embedded default's base: is it larger than the seed spread?

    python bench/rl_budget.py                                    # hard, steps 60 and 120, seeds 0-3 (~12 min)
    python bench/rl_budget.py --mode fuzzy --steps 60 --seeds 0 1 2 --test-limit 128
    python bench/rl_budget.py --steps 60 --seeds 0 1 2 --set prompts_per_step=64 --set rollout_batch=256

Needs a finished default run (`snakemake --cores all`): it reads results/<experiment>/configs/train.yaml,
the base model and the data from there, and changes only the mode, the number of steps, the seed and the
`--set` training overrides (everything else, including the cosine schedule over `steps` and the
best-validation checkpoint, is the default's; the overrides name the runs' directories and the JSON). Each (steps, seed) trains with `softcot train` into bench/out/rl_budget/ (two jobs at a time,
one thread each) and is evaluated greedy with `softcot evaluate --settings hard_greedy` on the first
`--test-limit` problems of the test split (default: all of them; the default run's tables use 128).
A finished run or evaluation is reused, so an interrupted benchmark resumes.

Prints per run: the best validation step and score, test greedy pass@1 and its gain over the base; per
budget: the mean gain, the seed spread (sample std) and whether mean > spread (the workflow issue's test).
Writes bench/out/rl_budget_<mode>.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from common import OUT_DIR, ROOT, table


def run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if rc:
        sys.exit(f"failed ({rc}): {' '.join(cmd)}\n  see {log}")


def train(res: Path, work: Path, mode: str, steps: int, seed: int, sets: list[str]) -> Path:
    out = work / f"{mode}{set_tag(sets)}_steps{steps}_seed{seed}"
    if not (out / "summary.json").exists():
        run(["softcot", "train", "--config", str(res / "configs" / "train.yaml"), f"mode.kind={mode}",
             f"steps={steps}", f"seed={seed}", f"model.name_or_path={res / 'base'}",
             f"data.train={res / 'data' / 'train.jsonl'}", f"data.val={res / 'data' / 'val.jsonl'}",
             f"output_dir={out}", f"ckpt_dir={work / 'ckpt' / out.name}", "threads=1", *sets],
            work / f"{out.name}.log")
    return out


def set_tag(sets: list[str]) -> str:
    """'' for the default's settings, else '_' + the overrides (prompts_per_step=64 -> prompts_per_step64)."""
    return "".join("_" + s.replace("=", "").replace(".", "-").replace("/", "-") for s in sets)


def evaluate(res: Path, model: Path, out: Path, limit: int | None) -> float:
    if not (out / "summary.json").exists():
        cmd = ["softcot", "evaluate", "--config", str(res / "configs" / "eval.yaml"), "--model", str(model),
               "--data", str(res / "data" / "test.jsonl"), "--settings", "hard_greedy", "--threads", "1",
               "--out", str(out), "--no-progress", "--restart-on-change"]
        cmd += ["--limit", str(limit)] if limit else ["limit=null"]
        run(cmd, out.parent / f"{out.name}.log")
    return 100 * json.loads((out / "summary.json").read_text())["settings"]["hard_greedy"]["pass1"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default="toy")
    ap.add_argument("--mode", default="hard", choices=["hard", "soft", "fuzzy"])
    ap.add_argument("--steps", type=int, nargs="+", default=[60, 120])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--test-limit", type=int, default=None, help="first N test problems (default: all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="a training override on top of the default's train.yaml (repeatable), e.g. "
                         "prompts_per_step=64; the runs get their own directories")
    args = ap.parse_args()

    res = ROOT / "results" / args.experiment
    for need in (res / "configs" / "train.yaml", res / "configs" / "eval.yaml", res / "base" / "config.json"):
        if not need.exists():
            sys.exit(f"{need} is missing: run the default pipeline first (`snakemake --cores all`)")
    work = OUT_DIR / "rl_budget"
    (work / "eval").mkdir(parents=True, exist_ok=True)
    tag = f"limit{args.test_limit}" if args.test_limit else "all"

    def one(job):
        steps, seed = job
        out = train(res, work, args.mode, steps, seed, args.sets)
        summary = json.loads((out / "summary.json").read_text())
        test = evaluate(res, out / "model", work / "eval" / f"{out.name}_{tag}", args.test_limit)
        return {"steps": steps, "seed": seed, "best_step": summary["best_step"],
                "best_val": 100 * summary["best_val_greedy_pass1"], "test_g1": test}

    base = evaluate(res, res / "base", work / "eval" / f"base_{tag}", args.test_limit)
    jobs = [(s, seed) for s in args.steps for seed in args.seeds]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, jobs))
    for r in rows:
        r["gain"] = r["test_g1"] - base
    budgets = []
    for s in args.steps:
        gains = [r["gain"] for r in rows if r["steps"] == s]
        sd = statistics.stdev(gains) if len(gains) > 1 else float("nan")
        mean = statistics.mean(gains)
        budgets.append({"steps": s, "seeds": len(gains), "mean_gain": mean, "spread": sd,
                        "gain_exceeds_spread": bool(mean > sd)})
    print(f"{args.mode} RL{' (' + ' '.join(args.sets) + ')' if args.sets else ''} on results/{args.experiment}/base; test greedy pass@1 on {args.test_limit or 'all'} "
          f"problems; base {base:.1f}")
    print(table(rows, [("steps", "steps", "d"), ("seed", "seed", "d"), ("best_step", "best step", "d"),
                       ("best_val", "val G1", ".1f"), ("test_g1", "test G1", ".1f"), ("gain", "gain", "+.1f")]))
    print()
    print(table(budgets, [("steps", "steps", "d"), ("seeds", "seeds", "d"), ("mean_gain", "mean gain", "+.1f"),
                          ("spread", "seed std", ".1f"), ("gain_exceeds_spread", "mean > std", "")]))
    path = OUT_DIR / f"rl_budget_{args.mode}{set_tag(args.sets)}.json"
    path.write_text(json.dumps({"command": " ".join(["bench/rl_budget.py"] + sys.argv[1:]), "base_test_g1": base,
                                "overrides": args.sets,
                                "runs": rows, "budgets": budgets}, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
