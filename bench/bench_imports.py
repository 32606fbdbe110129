"""Start-up cost of each kind of workflow job: the imports its `softcot` command pays, old code against new.

    python bench/bench_imports.py                      # old = ea18544, 5 fresh interpreters per measurement
    python bench/bench_imports.py --old HEAD~5 --repeats 9

A job runs `softcot <command>`, which imports the command's module (softcot.cli's COMMANDS) and, in the jobs
that load a model, transformers' Llama module when the model is built. Each row is the wall time of those
imports in a fresh interpreter (`python -c`), the median over `--repeats`, for this checkout and for the code
of git revision `--old` (a job whose module the old code lacks gets '-'; extracted with `git archive` into bench/out/rl_step/<rev>/, as bench_rl_step.py does,
and put first on PYTHONPATH). The rows alternate old and new. Also prints, from `python -X importtime`, what torch,
transformers, accelerate and the Llama module cost inside one new model job's imports. Writes bench/out/imports.json.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

from bench_rl_step import OUT, ROOT, checkout

LLAMA = "transformers.models.llama.modeling_llama"
JOBS = {   # job kind -> the modules its command imports (the Llama module where the job builds a model)
    "train, evaluate, pretrain, diagnose (model jobs)": ["softcot.trainer", "softcot.evaluate", LLAMA],
    "export": ["softcot.export", LLAMA],
    "tables": ["softcot.tables"],
    "figures": ["softcot.figures"],
    "toy-data": ["softcot.toy"],
    "docs": ["softcot.docs"],
    "Snakefile's config check": ["softcot.workflow_config"],
}
TIMER = ("import importlib, time\nt = time.perf_counter()\nfor m in {mods!r}:\n    importlib.import_module(m)\n"
         "print(time.perf_counter() - t)")


def present(code_dir, mods: list[str]) -> bool:
    """Whether every softcot module of `mods` exists in that tree (a job the old code did not have: no)."""
    return all((code_dir / (m.replace(".", "/") + ".py")).exists() for m in mods if m.startswith("softcot."))


def timed(code_dir, mods: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    out = subprocess.run([sys.executable, "-c", TIMER.format(mods=mods)], env=env, cwd=code_dir, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


PACKAGES = ("torch", "transformers", "accelerate", "transformers.models.llama.modeling_llama", "datasets",
            "matplotlib", "math_verify")


def package_times(code_dir, mods: list[str]) -> dict[str, float]:
    """Cumulative import time of each of PACKAGES where it is first imported (python -X importtime)."""
    env = {**os.environ, "PYTHONPATH": str(code_dir)}
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "; ".join(f"import {m}" for m in mods)],
                         env=env, cwd=code_dir, check=True, capture_output=True, text=True).stderr
    out = {}
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if m and m[2] in PACKAGES and m[2] not in out:
            out[m[2]] = int(m[1]) / 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="ea18544", help="git revision of the old code (default: ea18544)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    old = checkout(args.old)
    rows = {}
    for job, mods in JOBS.items():
        t_old, t_new = [], []
        for _ in range(args.repeats):
            if present(old, mods):
                t_old.append(timed(old, mods))
            t_new.append(timed(ROOT, mods))
        rows[job] = {"modules": mods, "old_s": statistics.median(t_old) if t_old else None,
                     "new_s": statistics.median(t_new)}
    print(f"imports of each job's command, fresh interpreter, median of {args.repeats} (old = {args.old})")
    print(f"{'job':52s} {'old (s)':>8s} {'new (s)':>8s} {'new/old':>8s}")
    for job, r in rows.items():
        if r["old_s"] is None:                  # the old code had no such command
            print(f"{job:52s} {'-':>8s} {r['new_s']:8.2f} {'-':>8s}")
        else:
            print(f"{job:52s} {r['old_s']:8.2f} {r['new_s']:8.2f} {r['new_s'] / r['old_s']:8.2f}")
    top = package_times(ROOT, JOBS[next(iter(JOBS))])
    print("of which (a model job, python -X importtime, cumulative): "
          + ", ".join(f"{name} {s:.2f} s" for name, s in top.items()))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "imports.json").write_text(json.dumps({"old": args.old, "repeats": args.repeats, "jobs": rows,
                                                  "top_model_job": top}, indent=2))
    print(f"wrote {OUT / 'imports.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
