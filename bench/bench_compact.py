"""Rollout compaction (`RolloutConfig.compact`): the same rollouts with and without it, on rows that end early.

    python bench/bench_compact.py                                   # the default's base, test and test_hard
    python bench/bench_compact.py --batches 64 256 512 --repeats 7 --modes hard

With compaction, once a fifth of the computed rows have ended their CoT the rollout moves the live rows to the
front of its KV cache and computes only those (`softcot.rollout.COMPACT_AT`). It changes no random draw, but a
matmul over fewer rows may round differently, and in soft mode such a difference can grow over a long CoT into
another token: every (batch, mode, split) here counts the rows whose CoT or answer tokens differ between the
two rollouts, over all repeats. Unlike bench_rollout.py (where no row may stop early), the rows here stop
where the model stops: the default's trained base on the first B problems of each test split (cycled when B
is larger), with the evaluation's CoT budgets (64 for test, 96 for test_hard) and greedy answers, the CoT
sampled at T = 1 (hard) or soft with the paper's tau and noise. Needs a finished default run
(`snakemake --cores all`).

Prints, per row, the median wall time of each variant over interleaved repeats, their ratio (compact / off;
< 1 is faster) and the live-row fraction: the mean, over CoT steps, of the rows still generating.
Writes bench/out/compact_<experiment>.json.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from common import OUT_DIR, ROOT, Timer, median, table, env_info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--experiment", default="toy")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--modes", nargs="+", default=["hard", "soft"], choices=["hard", "soft", "fuzzy"])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from softcot.modeling import ModelConfig, load_model
    from softcot.modes import CoTMode
    from softcot.prompt import resolve_template
    from softcot.rollout import RolloutConfig, rollout

    res = ROOT / "results" / args.experiment
    if not (res / "base" / "config.json").exists():
        sys.exit(f"{res / 'base'} is missing: run the default pipeline first (`snakemake --cores all`)")
    model, tok = load_model(ModelConfig(name_or_path=str(res / "base")), device="cpu", dtype=torch.float32)
    model.eval()
    template = resolve_template("toy")
    rows = []
    for split, budget in (("test", 64), ("test_hard", 96)):
        qs = [json.loads(line)["question"] for line in open(res / "data" / f"{split}.jsonl")]
        for B in args.batches:
            prompts = [template.format(question=qs[i % len(qs)]) for i in range(B)]
            for kind in args.modes:
                times = {False: [], True: []}
                differ = 0
                out = {}
                for rep in range(args.repeats + 1):                  # the first round is a warm-up
                    for compact in ((False, True) if rep % 2 else (True, False)):
                        cfg = RolloutConfig(max_cot_tokens=budget, max_answer_tokens=8, answer_temperature=0.0,
                                            compact=compact)
                        g = torch.Generator().manual_seed(rep)
                        with Timer("cpu") as t:
                            ro = rollout(model, tok, prompts, CoTMode(kind), cfg, generator=g)
                        if rep:
                            times[compact].append(t.s)
                        out[compact] = ro
                    a, b = out[False], out[True]
                    differ += sum(x != y or u != v for x, y, u, v in zip(a.cot_ids, b.cot_ids, a.answer_ids,
                                                                          b.answer_ids))
                cot_mask = out[True].cot_mask
                live = cot_mask[:, cot_mask.any(0)].float().mean().item()
                off, on = median(times[False]), median(times[True])
                rows.append({"split": split, "B": B, "mode": kind, "off_s": off, "compact_s": on,
                             "ratio": on / off, "live": live, "rows_differ": differ,
                             "rows": B * (args.repeats + 1)})
                print(table(rows[-1:], COLS).splitlines()[-1] if len(rows) > 1 else table(rows, COLS), flush=True)
    print()
    print(table(rows, COLS))
    path = OUT_DIR / f"compact_{args.experiment}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"command": " ".join(sys.argv), "env": env_info("cpu"), "rows": rows}, indent=2))
    print(f"wrote {path}")
    return 0


COLS = [("split", "split", ""), ("B", "B", "d"), ("mode", "mode", ""), ("off_s", "off s", ".3f"),
        ("compact_s", "compact s", ".3f"), ("ratio", "compact/off", ".2f"), ("live", "live rows", ".2f"),
        ("rows_differ", "rows differing", "d"), ("rows", "of rows", "d")]

if __name__ == "__main__":
    sys.exit(main())
