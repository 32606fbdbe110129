"""Where a rollout's host time goes: softcot's rollout (hard, soft) against generate(), by category (cProfile).

    python bench/profile_rollout.py --model tiny                          # ~30 s
    python bench/profile_rollout.py --model smollm2 --batch 8 --cot-tokens 32 --answer-tokens 16

Same setup as bench_rollout.py (same batch, lengths, no early stop). Each method runs once for warm-up and
then `--repeats` times under cProfile; the per-function statistics are summed and split into categories:

  decoder forward     cumulative time of the decoder's forward (LlamaModel.forward): the model itself,
                      including HF's per-step plumbing (mask creation, rotary, cache update)
  LM head             ours: lm_logits; generate: the CausalLM forward minus the decoder
  sampling            ours: _sample (softmax + multinomial); generate: softmax + multinomial
  p E mixture         softcot.modes.mix (soft/fuzzy only)
  marker tail checks  ends_with_marker (tokenizer.decode of a short tail, rows whose token may end it)
  device->host syncs  .tolist() / .item() / bool(tensor) calls (on a GPU each waits for the queue)
  host->device        torch.tensor(...) of Python lists (e.g. the per-step `active` mask)
  tokenize/decode     the tokenizer's __call__ / decode / batch_decode outside the marker checks
  loop body (self)    the Python of rollout() itself / generate's _sample loop itself
  other               everything else (generate's input preparation, logits processors, stopping criteria...)
"""
from __future__ import annotations

import argparse
import cProfile
import pstats

import torch

from common import (add_common_args, env_info, load, make_prompts, no_early_stop, setup_torch, table,
                    rollout_shape, torch_dtype, write_json)


def code_key(fn):
    import inspect
    c = inspect.unwrap(fn).__code__          # HF decorates forward(); the wrapper's code is shared by many
    return (c.co_filename, c.co_firstlineno, c.co_name)


def categorise(stats: pstats.Stats, model, method: str) -> dict:
    import softcot.kvcache as kv
    import softcot.modeling as modeling
    import softcot.modes as modes
    import softcot.rollout as ro
    import softcot.stopping as stopping
    from softcot.modeling import decoder_of
    st = stats.stats          # {(file, line, name): (cc, nc, tt, ct, callers)}
    cum = lambda k: st[k][3] if k in st else 0.0        # noqa: E731
    tot = lambda k: st[k][2] if k in st else 0.0        # noqa: E731

    def builtin_cum(sub: str) -> float:
        return sum(v[3] for k, v in st.items() if k[0] == "~" and sub in k[2])

    total = max(v[3] for v in st.values())              # the outermost call
    dec = cum(code_key(type(decoder_of(model)).forward))
    full = cum(code_key(type(model).forward))
    cat = {"decoder forward": dec}
    syncs = builtin_cum("'tolist'") + builtin_cum("'item'") + builtin_cum("'__bool__'")
    h2d = builtin_cum("torch.tensor>")
    if method == "generate":
        cat["LM head"] = max(0.0, full - dec)
        cat["sampling"] = builtin_cum("torch.multinomial") + builtin_cum("torch.softmax") + \
            builtin_cum("'softmax'")
        cat["p E mixture"] = 0.0
        cat["marker tail checks"] = 0.0
        from transformers.generation import utils as gu
        cat["loop body (self)"] = tot(code_key(gu.GenerationMixin._sample))
    else:
        cat["LM head"] = cum(code_key(modeling.lm_logits))
        cat["sampling"] = cum(code_key(ro._sample))
        cat["p E mixture"] = cum(code_key(modes.mix))
        cat["marker tail checks"] = cum(code_key(stopping.ends_with_marker))
        phases = (ro.rollout, ro._prefill_prompts, ro._cot_step, ro._next_cot_input, ro._detect_end,
                  ro._answer_prefill, ro._answer_steps, ro._assemble, kv.Decoder.forward, kv.Decoder.step,
                  kv.Decoder.maybe_compact)
        cat["loop body (self)"] = sum(tot(code_key(f)) for f in phases)
    cat["device->host syncs"] = syncs
    cat["host->device"] = h2d
    tokcalls = sum(v[3] for k, v in st.items() if "tokenization_utils" in k[0] and k[2] in ("__call__", "batch_decode"))
    dec_calls = sum(v[3] for k, v in st.items() if "tokenization_utils" in k[0] and k[2] == "decode")
    cat["tokenize/decode"] = max(0.0, tokcalls + dec_calls - cat["marker tail checks"])
    cat["other"] = max(0.0, total - sum(cat.values()))
    cat["TOTAL"] = total
    return cat


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch=None, repeats=3)
    ap.add_argument("--cot-tokens", type=int, default=None)
    ap.add_argument("--answer-tokens", type=int, default=None)
    ap.add_argument("--methods", default="hard,soft,generate")
    ap.add_argument("--top", type=int, default=0, help="also print the top-N functions by self time per method")
    args = ap.parse_args(argv)
    device = setup_torch(args)
    L, A = rollout_shape(args)
    from bench_rollout import once
    model, tok, questions, template, _ = load(args.model, device, torch_dtype(args.dtype), args.template)
    prompts = make_prompts(questions, template, args.batch)
    methods = [m for m in args.methods.split(",") if m]
    cats, tops = {}, {}
    with no_early_stop(model, tok):
        for m in methods:
            once(m, model, tok, prompts, L, A, args.seed, device)          # warm-up
            pr = cProfile.Profile()
            for r in range(args.repeats):
                pr.enable()
                once(m, model, tok, prompts, L, A, args.seed + r, device)
                pr.disable()
            st = pstats.Stats(pr)
            c = categorise(st, model, m)
            cats[m] = {k: v / args.repeats for k, v in c.items()}
            if args.top:
                import io
                s = io.StringIO()
                pstats.Stats(pr, stream=s).strip_dirs().sort_stats("tottime").print_stats(args.top)
                tops[m] = s.getvalue()
    keys = list(next(iter(cats.values())).keys())
    rows = [{"category": k, **{m: cats[m][k] for m in methods},
             **{f"{m}%": 100 * cats[m][k] / cats[m]["TOTAL"] for m in methods}} for k in keys]
    print(f"model {args.model}, {device} {args.dtype}, threads {torch.get_num_threads()}, B={args.batch}, L={L}, "
          f"A={A}; seconds per rollout under cProfile (mean of {args.repeats}; cProfile slows Python-heavy code)")
    print(table(rows, [("category", "category", "")] + [(m, f"{m} s", ".3f") for m in methods] +
                [(f"{m}%", f"{m} %", ".1f") for m in methods]))
    for m, s in tops.items():
        print(f"\n===== {m}: top functions by self time =====\n{s}")
    path = write_json({"env": env_info(device), "model": args.model, "batch": args.batch, "L": L, "A": A,
                       "categories_s": cats, "top": tops}, "profile_rollout", args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
