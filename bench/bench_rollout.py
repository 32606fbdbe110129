"""Rollout throughput: softcot's hard / soft / fuzzy / multiplex / gumbel SAMPLING rollouts against Hugging Face
generate().

    python bench/bench_rollout.py --model tiny                      # CPU, a few minutes at most
    python bench/bench_rollout.py --model smollm2 --batch 16 --cot-tokens 64 --answer-tokens 16
    python bench/bench_rollout.py --model smollm2 --device cuda --dtype bf16 --batch 64 --cot-tokens 256

One run, one model, one left-padded batch of prompts, the same lengths for every method:
  * ours-{hard,soft,fuzzy,multiplex,gumbel}: softcot.rollout.rollout(model, tok, prompts, CoTMode(kind), RolloutConfig(
    max_cot_tokens=L, max_answer_tokens=A, marker=<never produced>, answer_temperature=1.0), generator=g);
  * generate: model.generate(**tok(prompts, padding=True), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
    max_new_tokens=L+A, min_new_tokens=L+A) (full-vocabulary sampling, like ours).
Nothing stops early: the marker is a string no model writes (it ends with ':' like the real one, so the
per-row tail check still runs on ':' tokens), and a forward hook on the output head bans EOS and every
token containing '}' for ALL methods (generate gets the same hook), so every row runs L CoT + A answer
positions. Throughput = B * (L + A) generated positions / wall time, tokenisation and decoding of the text
included for every method (ours additionally prefills W answer-prefix tokens in one forward).
Repeats are interleaved (hard, soft, fuzzy, multiplex, gumbel, generate, then rotated) so that load drift on a shared box hits
every method alike; medians over the repeats are reported, plus the median of the per-repeat ratios, for wall
time and for the process's CPU time (steadier on a shared CPU; the targets use wall time).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import torch

from common import (NEVER_MARKER, Timer, add_common_args, env_info, load, make_prompts, median, no_early_stop,
                    rollout_shape, setup_torch, spread, table, torch_dtype, write_json)

METHODS = ("hard", "soft", "fuzzy", "multiplex", "gumbel", "generate")


def run_ours(model, tok, prompts, kind, L, A, seed, device):
    from softcot.modes import CoTMode
    from softcot.rollout import RolloutConfig, rollout
    g = torch.Generator(device=device).manual_seed(seed)
    cfg = RolloutConfig(max_cot_tokens=L, max_answer_tokens=A, marker=NEVER_MARKER, answer_temperature=1.0)
    with Timer(device) as t:
        ro = rollout(model, tok, prompts, CoTMode(kind), cfg, generator=g)
    lc = max(len(c) for c in ro.cot_ids)
    la = max(len(a) for a in ro.answer_ids)
    real = int(ro.cot_mask.sum() + ro.answer_mask.sum())
    return t, lc, la, real


def run_generate(model, tok, prompts, L, A, seed, device):
    torch.manual_seed(seed)
    with Timer(device) as t:
        enc = tok(list(prompts), return_tensors="pt", padding=True)
        enc = {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                             max_new_tokens=L + A, min_new_tokens=L + A, pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        tok.batch_decode(new, skip_special_tokens=True)
    n = new.shape[1]
    return t, n, 0, int(new.numel())


class DecoderClock:
    """Forward hooks on the decoder (no LM head): time inside its forward calls, calls, and query / key positions
    processed. Splits a rollout into 'the model' and 'everything around it'. On a GPU each hook synchronises,
    which perturbs the timing: off there unless asked for."""

    def __init__(self, model, device):
        from softcot.modeling import decoder_of
        self.device = device
        self.reset()
        body = decoder_of(model)
        self.handles = [body.register_forward_pre_hook(self._pre, with_kwargs=True),
                        body.register_forward_hook(self._post, with_kwargs=True)]

    def reset(self):
        self.s, self.calls, self.q, self.kv = 0.0, 0, 0, 0

    def _pre(self, _m, args, kwargs):
        from common import sync
        sync(self.device)
        x = kwargs.get("inputs_embeds")
        x = x if x is not None else kwargs.get("input_ids", args[0] if args else None)
        am = kwargs.get("attention_mask")
        self.q += int(x.shape[1]) if x is not None else 0
        self.kv += int(am.shape[1]) if am is not None else 0
        self.t0 = time.perf_counter()

    def _post(self, *_a):
        from common import sync
        sync(self.device)
        self.s += time.perf_counter() - self.t0
        self.calls += 1

    def remove(self):
        for h in self.handles:
            h.remove()


def once(method, model, tok, prompts, L, A, seed, device):
    if method == "generate":
        return run_generate(model, tok, prompts, L, A, seed, device)
    return run_ours(model, tok, prompts, method, L, A, seed, device)


def profile_hard(model, tok, prompts, L, A, seed, device, top=25) -> str:
    """cProfile of one hard rollout and one generate(): where the host time goes, by function."""
    out = io.StringIO()
    for method in ("hard", "generate"):
        pr = cProfile.Profile()
        pr.enable()
        once(method, model, tok, prompts, L, A, seed, device)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).strip_dirs().sort_stats("tottime").print_stats(top)
        out.write(f"\n===== cProfile, {method}, sorted by tottime (self time) =====\n")
        out.write(s.getvalue())
    return out.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch=None, repeats=5)
    ap.add_argument("--cot-tokens", type=int, default=None, help="L (default 128 tiny, 32 otherwise)")
    ap.add_argument("--answer-tokens", type=int, default=None, help="A (default 32 tiny, 16 otherwise)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma list of " + " | ".join(METHODS))
    ap.add_argument("--split", choices=["auto", "on", "off"], default="auto", help="time the decoder's forward "
                    "calls inside each rollout (hooks; auto = on for CPU, off for CUDA where the hooks' syncs perturb)")
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one hard rollout and "
                    "one generate() (host-side hotspots)")
    args = ap.parse_args(argv)
    device = setup_torch(args)
    L, A = rollout_shape(args)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            ap.error(f"--methods: unknown {m!r}; allowed {', '.join(METHODS)}")

    model, tok, questions, template, load_s = load(args.model, device, torch_dtype(args.dtype), args.template)
    prompts = make_prompts(questions, template, args.batch)
    enc = tok(prompts, padding=True)
    P = len(enc["input_ids"][0])
    n_pad = sum(m.count(0) for m in enc["attention_mask"])
    V, d = model.get_input_embeddings().weight.shape
    print(f"model {args.model} (V={V}, d={d}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
          f"loaded in {load_s:.1f}s) on {device} {args.dtype}, threads {torch.get_num_threads()}; batch {args.batch}, "
          f"prompt {P} slots ({n_pad} left-pad), L={L} CoT + A={A} answer positions; "
          f"{args.warmup} warm-up + {args.repeats} timed repeats, interleaved", flush=True)

    times = {m: [] for m in methods}
    cpu_times = {m: [] for m in methods}
    dec_times = {m: [] for m in methods}
    shape = {}
    clock = DecoderClock(model, device) if (args.split == "on" or (args.split == "auto" and device.type == "cpu")) else None
    with no_early_stop(model, tok):
        for r in range(-args.warmup, args.repeats):
            order = methods[r % len(methods):] + methods[:r % len(methods)] if r >= 0 else methods
            for m in order:
                if clock:
                    clock.reset()
                tm, lc, la, real = once(m, model, tok, prompts, L, A, args.seed + max(r, 0), device)
                s = tm.s
                shape[m] = {"cot_positions": lc, "answer_positions": la, "real_tokens": real}
                if clock:
                    shape[m].update(decoder_calls=clock.calls, decoder_q_positions=clock.q, decoder_kv_sum=clock.kv)
                    if r >= 0:
                        dec_times[m].append(clock.s)
                if m != "generate" and (lc != L or la != A):
                    print(f"WARNING: {m} ran {lc} CoT + {la} answer positions, not {L} + {A}")
                if m == "generate" and lc != L + A:
                    print(f"WARNING: generate produced {lc} new tokens, not {L + A}")
                if r >= 0:
                    times[m].append(s)
                    cpu_times[m].append(tm.cpu_s)
                else:
                    print(f"  warm-up {m}: {s:.2f}s", flush=True)
            if r >= 0:
                print(f"  repeat {r + 1}/{args.repeats}: " + ", ".join(f"{m} {times[m][-1]:.2f}s" for m in methods),
                      flush=True)
        if clock:
            clock.remove()
        prof = profile_hard(model, tok, prompts, L, A, args.seed, device) if args.profile else None

    rows = []
    for m in methods:
        pos = (L + A) * args.batch
        med = median(times[m])
        rows.append({"method": "generate()" if m == "generate" else f"ours-{m}", "median_s": med,
                     "q25_s": spread(times[m])["q25"], "q75_s": spread(times[m])["q75"],
                     "tok_per_s": pos / med, "ms_per_position": 1000 * med / (L + A), "positions": pos,
                     "cpu_median_s": median(cpu_times[m]), "tok_per_cpu_s": pos / median(cpu_times[m]),
                     **({"decoder_s": median(dec_times[m]),
                         "outside_decoder_s": median([a - b for a, b in zip(times[m], dec_times[m])])}
                        if dec_times[m] else {}), **shape[m]})

    def ratio(a, b):     # (ratio of medians, median of per-repeat ratios), wall and process CPU time
        if a not in times or b not in times:
            return None
        paired = [x / y for x, y in zip(times[a], times[b])]
        cpaired = [x / y for x, y in zip(cpu_times[a], cpu_times[b])]
        return {"ratio_of_medians": median(times[a]) / median(times[b]), "median_paired": median(paired),
                "cpu_ratio_of_medians": median(cpu_times[a]) / median(cpu_times[b]), "cpu_median_paired": median(cpaired)}

    ratios = {"soft_over_hard_time": ratio("soft", "hard"), "fuzzy_over_hard_time": ratio("fuzzy", "hard"),
              "multiplex_over_hard_time": ratio("multiplex", "hard"), "gumbel_over_hard_time": ratio("gumbel", "hard"),
              "ours_hard_speed_over_generate": ratio("generate", "hard")}
    print()
    print(table(rows, [("method", "method", ""), ("median_s", "median s", ".3f"), ("q25_s", "q25", ".3f"),
                       ("q75_s", "q75", ".3f"), ("tok_per_s", "tokens/s", ".0f"),
                       ("ms_per_position", "ms/position", ".2f"), ("positions", "B*(L+A)", "d"),
                       ("cpu_median_s", "CPU s", ".3f"), ("tok_per_cpu_s", "tokens/CPU-s", ".0f")]))
    print("(CPU s = the process's CPU time, all threads: steadier than wall on a shared CPU box; on a GPU it "
          "includes spin-waiting)")
    if clock:
        print()
        print(table(rows, [("method", "method", ""), ("decoder_s", "in decoder s", ".3f"),
                           ("outside_decoder_s", "outside decoder s", ".3f"), ("decoder_calls", "decoder calls", "d"),
                           ("decoder_q_positions", "query positions/row", "d"), ("decoder_kv_sum", "sum of key lengths", "d")]))
        print("(in decoder = time inside the decoder's forward calls (hooks): the model, its mask and cache plumbing; "
              "outside = LM head,\nsampling, mixing, bookkeeping, tokenizer. Ours also runs the W answer-prefix "
              "positions, so its decoder does a little more work.)")
    print()
    for k, v in ratios.items():
        if v:
            print(f"{k:32s} wall {v['ratio_of_medians']:.3f} (paired {v['median_paired']:.3f})   "
                  f"CPU time {v['cpu_ratio_of_medians']:.3f} (paired {v['cpu_median_paired']:.3f})")
    targets = {"soft_over_hard_time <= 1.05": None, "ours_hard_speed_over_generate >= " +
               ("1.5 (GPU)" if device.type == "cuda" else "1.0 (CPU)"): None}
    if ratios["soft_over_hard_time"]:
        targets["soft_over_hard_time <= 1.05"] = ratios["soft_over_hard_time"]["ratio_of_medians"] <= 1.05
    if ratios["ours_hard_speed_over_generate"]:
        need = 1.5 if device.type == "cuda" else 1.0
        targets[list(targets)[1]] = ratios["ours_hard_speed_over_generate"]["ratio_of_medians"] >= need
    for kind in ("multiplex", "gumbel"):            # options beyond the paper: at most 10 % over hard
        r = ratios[f"{kind}_over_hard_time"]
        targets[f"{kind}_over_hard_time <= 1.10"] = None if r is None else r["ratio_of_medians"] <= 1.10
    for k, v in targets.items():
        print(f"target {k}: {'n/a' if v is None else ('MET' if v else 'NOT MET')}")
    if prof:
        print(prof)
    path = write_json({"env": env_info(device), "model": args.model, "V": V, "d": d, "dtype": args.dtype,
                       "batch": args.batch, "prompt_slots": P, "left_pad_slots": n_pad, "L": L, "A": A,
                       "warmup": args.warmup, "repeats": args.repeats, "times_s": times, "cpu_times_s": cpu_times,
                       "decoder_times_s": dec_times,
                       "rows": rows,
                       "ratios": ratios, "targets": targets, "cprofile": prof}, "bench_rollout", args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
