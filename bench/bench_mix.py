"""Does the soft-token mixture p E cost one V x d product per step, about the output head? And no (V, V)?

    python bench/bench_mix.py                                   # tiny + smollm2 shapes, CPU, < 1 min
    python bench/bench_mix.py --presets smollm2,llama3b --device cuda --dtype bf16

For each (V, d) preset and N rows (the rollout batch), with random E (V, d) in --dtype:
  mix   = softcot.modes.mix(logits, E, tau)      softmax(logits / tau) @ E.float()   (N, V) x (V, d)
  head  = F.linear(hidden, E).float()            hidden @ E.T, as lm_logits does     (N, d) x (d, V)
both ~2 N V d flops; the reported ratio mix/head (medians over interleaved repeats) should be ~1. The
softmax alone and the matmul alone are timed too. With bf16 E, mix converts E to fp32 on every call (a
V x d copy): the 'mix (E pre-cast)' row shows what that conversion costs.

Checks (asserted here, not in the test-suite), with torch.profiler(record_shapes=True):
  1. mix() runs exactly one matrix product, with input shapes (N, V) x (V, d), and no op sees a tensor with
     two dimensions of size V (a dense V x V). A positive control, p @ (eye(V) @ E), must be flagged.
  2. A soft rollout of the tiny char-level model (V=104) runs exactly one (B, V) x (V, d) product per CoT step
     and never a (V, V) tensor.
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import Timer, env_info, median, setup_torch, table, torch_dtype, write_json

PRESETS = {"tiny": (104, 96), "smollm2": (49152, 576), "llama3b": (128256, 3072), "qwen3b": (151936, 2048)}
MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::matmul", "aten::linear", "aten::einsum", "aten::dot",
           "aten::mv", "aten::baddbmm", "aten::_scaled_mm")


def op_shapes(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    return [(e.name, [tuple(s) for s in e.input_shapes if isinstance(s, (list, tuple))]) for e in prof.events()]


def vv_ops(events, V):
    """Ops with an input tensor that has at least two dimensions of size V."""
    return [(n, s) for n, s in events if any(list(x).count(V) >= 2 for x in s)]


def lowest_matmuls(events):
    """Matrix products, counted once: aten::mm / bmm / addmm (what matmul / linear lower to on CPU and CUDA)."""
    return [(n, s) for n, s in events if n in ("aten::mm", "aten::bmm", "aten::addmm", "aten::mv", "aten::dot")]


def check_mix(V, d, N, device, dtype) -> dict:
    from softcot.modes import mix
    logits = torch.randn(N, V, device=device)
    E = torch.randn(V, d, device=device, dtype=dtype)
    ev = op_shapes(lambda: mix(logits, E, 0.5))
    vv = vv_ops(ev, V)
    mms = lowest_matmuls(ev)
    assert not vv, f"mix allocated / consumed a (V, V) tensor: {vv}"
    assert len(mms) == 1, f"mix ran {len(mms)} matrix products, expected 1: {mms}"
    assert sorted(mms[0][1][:2]) == sorted([(N, V), (V, d)]), f"unexpected product shapes {mms[0]}"

    def bad():      # positive control: a dense V x V detour must be caught by the same check
        p = torch.softmax(logits / 0.5, -1)
        return p @ (torch.eye(V, device=device) @ E.float())
    assert vv_ops(op_shapes(bad), V), "the (V, V) detector missed the positive control"
    return {"V": V, "d": d, "N": N, "matmuls": [list(map(list, s)) for _, s in mms], "vv_ops": 0,
            "positive_control_flagged": True}


def check_rollout(device, L=12, B=8) -> dict:
    from softcot.chartok import build_char_tokenizer
    from softcot.modes import CoTMode
    from softcot.pretrain import PretrainConfig, build_model
    from softcot.rollout import RolloutConfig, rollout
    from common import NEVER_MARKER, no_early_stop
    tok = build_char_tokenizer()
    model = build_model(PretrainConfig(), tok).to(device).eval()
    V, d = model.get_input_embeddings().weight.shape
    prompts = ["Q: 7+5-3+2\nA:", "Q: 1+1\nA:"] * (B // 2)
    cfg = RolloutConfig(max_cot_tokens=L, max_answer_tokens=4, marker=NEVER_MARKER)
    g = torch.Generator(device=device).manual_seed(0)
    with no_early_stop(model, tok):
        ev = op_shapes(lambda: rollout(model, tok, prompts, CoTMode("soft"), cfg, generator=g))
    vv = vv_ops(ev, V)
    mix_mm = [s for n, s in lowest_matmuls(ev) if len(s) >= 2 and s[0] == (B, V) and s[1] == (V, d)]
    assert not vv, f"the soft rollout touched a (V, V) tensor: {vv[:3]}"
    assert len(mix_mm) == L, f"{len(mix_mm)} (B, V) x (V, d) products in a soft rollout of {L} CoT steps"
    return {"V": V, "d": d, "B": B, "L": L, "mix_products": len(mix_mm), "vv_ops": 0}


def bench_preset(name, V, d, N, tau, device, dtype, repeats) -> dict:
    from softcot.modes import mix
    g = torch.Generator(device=device).manual_seed(0)
    E = (torch.randn(V, d, device=device, generator=g) * 0.02).to(dtype)
    E32 = E.float()
    logits = torch.randn(N, V, device=device, generator=g)
    hidden = torch.randn(N, d, device=device, generator=g).to(dtype)
    p = torch.softmax(logits / tau, -1)
    fns = {
        "head": lambda: F.linear(hidden, E).float(),
        "mix": lambda: mix(logits, E, tau),
        "mix (E pre-cast)": lambda: mix(logits, E32, tau),
        "softmax only": lambda: torch.softmax(logits.float() / tau, -1),
        "p @ E only": lambda: p @ E32,
    }
    if dtype == torch.float32:
        del fns["mix (E pre-cast)"]
    times = {k: [] for k in fns}
    for f in fns.values():                      # warm-up
        f()
    inner = max(1, int(0.05 / max(1e-6, _once(fns["head"], device))))     # >= ~50 ms per sample
    for r in range(repeats):
        for k in list(fns)[r % len(fns):] + list(fns)[:r % len(fns)]:
            with Timer(device) as t:
                for _ in range(inner):
                    fns[k]()
            times[k].append(t.s / inner)
    med = {k: median(v) for k, v in times.items()}
    flops = 2 * N * V * d
    rows = [{"preset": name, "op": k, "V": V, "d": d, "N": N, "median_us": 1e6 * med[k],
             "over_head": med[k] / med["head"], "GFLOPs": flops / med[k] / 1e9 if k in ("head", "mix", "p @ E only",
                                                                                      "mix (E pre-cast)") else None}
            for k in fns]
    return {"rows": rows, "times_s": times, "inner": inner, "ratio_mix_over_head": med["mix"] / med["head"],
            "paired_ratio": median([a / b for a, b in zip(times["mix"], times["head"])])}


def _once(f, device):
    with Timer(device) as t:
        f()
    return t.s


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,smollm2", help="comma list of " + " | ".join(PRESETS) +
                    " or VxD (e.g. 32000x4096)")
    ap.add_argument("--batch", type=int, default=32, help="N rows (the rollout batch)")
    ap.add_argument("--tau", type=float, default=0.5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = setup_torch(args)
    dtype = torch_dtype(args.dtype)

    checks = {"mix": [], "rollout": None}
    results, rows = {}, []
    for name in [x.strip() for x in args.presets.split(",") if x.strip()]:
        V, d = PRESETS[name] if name in PRESETS else map(int, name.lower().split("x"))
        N = args.batch if args.batch not in (V, d) else args.batch + 1      # keep the shape check unambiguous
        if V * d <= 2e7:
            checks["mix"].append(check_mix(V, d, N, device, dtype))
        res = bench_preset(name, V, d, N, args.tau, device, dtype, args.repeats)
        results[name] = res
        rows += res["rows"]
        print(f"{name}: V={V} d={d} N={N}: mix/head = {res['ratio_mix_over_head']:.2f} "
              f"(paired {res['paired_ratio']:.2f})", flush=True)
    checks["rollout"] = check_rollout(device)

    print()
    print(table(rows, [("preset", "preset", ""), ("op", "op", ""), ("V", "V", "d"), ("d", "d", "d"), ("N", "N", "d"),
                       ("median_us", "median us", ".1f"), ("over_head", "x head", ".2f"), ("GFLOPs", "GFLOP/s", ".1f")]))
    print()
    for c in checks["mix"]:
        print(f"CHECK mix V={c['V']} d={c['d']} N={c['N']}: one product {c['matmuls'][0]}, no (V, V) op; "
              f"positive control (eye(V)) flagged: OK")
    r = checks["rollout"]
    print(f"CHECK soft rollout (tiny, V={r['V']}, B={r['B']}, L={r['L']}): {r['mix_products']} (B, V) x (V, d) "
          f"products = one per CoT step, no (V, V) op: OK")
    path = write_json({"env": env_info(device), "dtype": args.dtype, "tau": args.tau, "rows": rows,
                       "results": results, "checks": checks}, "bench_mix", args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
