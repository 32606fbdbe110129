"""One RL training step of the embedded default, old code against new, side by side in one run.

    python bench/bench_rl_step.py                         # B x G = 64 x 8 = 512, old = ea18544, 2 rounds
    python bench/bench_rl_step.py --old HEAD~3 --prompts 8 --rounds 3 --steps 6

Each side is a `softcot train` of the default's base (results/toy/base: run `snakemake --cores all`, or
`snakemake results/toy/base`, first) for `--steps` steps on one thread, with validation off, from a fresh
checkpoint folder. The old side runs the code of git revision `--old`, extracted with `git archive` into
bench/out/rl_step/<rev>/ and put first on PYTHONPATH; the new side runs this checkout. The sides alternate
(old, new, old, new, ...) so that a busy machine slows both alike. A step's time is `step_s` of the run's
timing.jsonl, the first step left out (warm-up); the figure per side is the median over all its rounds.

Prints per side the median step time and its phases (rollout, reward, scoring forward, backward), and the
ratio old / new. Writes bench/out/rl_step.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(os.environ.get("BENCH_OUT", ROOT / "bench" / "out"))
PHASES = ("rollout_s", "reward_s", "score_fwd_s", "backward_s", "optim_s", "step_s")


def checkout(rev: str) -> Path:
    """The tree of `rev` under bench/out/rl_step/<sha> (extracted once)."""
    sha = subprocess.check_output(["git", "rev-parse", "--short", rev], cwd=ROOT, text=True).strip()
    dest = OUT / "rl_step" / sha
    if not (dest / "softcot").exists():
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile() as f:
            subprocess.check_call(["git", "archive", "--format=tar", sha, "softcot"], cwd=ROOT, stdout=f)
            f.seek(0)
            with tarfile.open(fileobj=f) as tar:
                tar.extractall(dest, filter="data")
    return dest


def run_side(code: Path, args, work: Path) -> list[dict]:
    res = ROOT / "results" / args.experiment
    out = work / "run"
    cmd = [sys.executable, "-m", "softcot.cli", "train", "--config", str(res / "configs" / "train.yaml"),
           f"mode.kind={args.mode}", f"steps={args.steps}", f"prompts_per_step={args.prompts}",
           f"group_size={args.group}", f"rollout_batch={args.rollout_batch}", f"micro_batch={args.micro_batch}",
           f"model.name_or_path={res / 'base'}", f"data.train={res / 'data' / 'train.jsonl'}", "data.val=null",
           f"output_dir={out}", f"ckpt_dir={work / 'ckpt'}", "threads=1", f"save_every={args.steps}",
           f"eval_every={args.steps}", f"seed={args.seed}"]
    env = {**os.environ, "PYTHONPATH": str(code), "SOFTCOT_PROGRESS_INTERVAL": "3600"}
    subprocess.run(cmd, cwd=work, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rows = [json.loads(line) for line in (out / "timing.jsonl").read_text().splitlines() if line.strip()]
    return rows[1:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", default="ea18544", help="git revision of the old code (default: ea18544)")
    ap.add_argument("--experiment", default="toy")
    ap.add_argument("--mode", default="hard", choices=["hard", "soft", "fuzzy"])
    ap.add_argument("--prompts", type=int, default=64, help="B, prompts per step")
    ap.add_argument("--group", type=int, default=8, help="G, rollouts per prompt")
    ap.add_argument("--rollout-batch", type=int, default=512)
    ap.add_argument("--micro-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4, help="steps per run; the first is left out")
    ap.add_argument("--rounds", type=int, default=2, help="alternating old/new runs per side")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (ROOT / "results" / args.experiment / "base").exists():
        sys.exit(f"results/{args.experiment}/base is missing: run `snakemake results/{args.experiment}/base` first")
    sides = {"old": checkout(args.old), "new": ROOT}
    steps: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name, code in sides.items():
            with tempfile.TemporaryDirectory(dir=OUT) as work:
                rows = run_side(code, args, Path(work))
            steps[name] += rows
            print(f"round {r + 1} {name}: step_s " + " ".join(f"{x['step_s']:.2f}" for x in rows), flush=True)
    med = {name: {p: statistics.median(x[p] for x in rows) for p in PHASES} for name, rows in steps.items()}
    print(f"\nB x G = {args.prompts} x {args.group} = {args.prompts * args.group} rollouts per step, {args.mode} "
          f"mode, 1 thread; medians over {len(steps['new'])} steps per side (old = {args.old})")
    print(f"{'phase':<12} {'old (s)':>9} {'new (s)':>9} {'old/new':>8}")
    for p in PHASES:
        print(f"{p:<12} {med['old'][p]:>9.3f} {med['new'][p]:>9.3f} {med['old'][p] / max(med['new'][p], 1e-9):>8.2f}")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "rl_step.json").write_text(json.dumps({"args": vars(args), "median": med, "steps": steps}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
