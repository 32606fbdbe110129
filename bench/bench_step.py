"""One RL step split into rollout, reward, teacher-forced scoring (forward), backward and optimiser, with the
fraction of wall time spent outside tensor compute and peak memory per phase.

    python bench/bench_step.py --model tiny                               # hard, soft, fuzzy; ~1-2 min
    python bench/bench_step.py --model smollm2 --modes hard,soft --repeats 3  # B=8, L=32, A=16; ~12 min on CPU
    python bench/bench_step.py --model smollm2 --device cuda --dtype bf16 --batch 64 --cot-tokens 128

The step is the trainer's (softcot/trainer.py) with the same calls: rollout(...) under no_grad in eval mode;
math_reward on the completions (timed; the advantages use seeded random rewards in {0, 10, 100} so that they
are non-zero whatever a random-weight model writes); Scorer(model, chunk, checkpoint_head=on GPU) + policy_loss
per micro-batch (forward), loss.backward() (backward); clip_grad_norm_(inf) + AdamW.step + zero_grad
(optimiser). --dtype bf16 = fp32 weights under bf16 autocast, as the trainer runs on GPU. Every phase is
timed with a device synchronisation at both ends (the trainer's timing.jsonl does not synchronise, so on a
GPU its score_fwd_s / backward_s hold only launch time; the kernels' time lands in no column). As in
bench_rollout.py the rollout cannot stop early (EOS and '}' banned at the head, a marker nobody writes).

Outside-compute fraction, three ways (printed with the method):
  hooks:     one un-profiled step with forward hooks (and a sync) on the decoder and the LM head: the share of
             each phase spent inside the model's forward; for the rollout the rest is sampling, the p E
             mixture, marker checks and bookkeeping in softcot/rollout.py.
  profiler:  a second step under torch.profiler: outside = 1 - (sum of self CPU time of all aten:: ops) / wall.
             Self times do not double-count nested ops; what is left is Python, HF module code, the rollout
             loop, tokenizer calls. Approximate: aten self time includes each op's dispatch/allocation cost
             (not compute), and the profiler adds a few us per op (a calibration on a trivial op is printed).
             GPU: also 1 - (union of CUDA kernel intervals) / wall = the share of time the GPU sits idle.
  scaling:   rollouts of B and B/4 rows without any profiler: t(B) = fixed + B * per_row; fixed / t(B) is the
             share of per-step costs that do not grow with the batch (Python, plumbing, dispatch, launches).
"""
from __future__ import annotations

import argparse
import contextlib
import random
import time

import torch

from common import (NEVER_MARKER, PeakMemory, Timer, add_common_args, env_info, load, make_prompts, median,
                    no_early_stop, peak_memory_method, setup_torch, sync, table, write_json)

PHASES = ("rollout", "reward", "score_fwd", "backward", "optim")


def autocast_ctx(device, dtype_name):
    if dtype_name == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Step:
    def __init__(self, model, tok, prompts, kind, args, device):
        from softcot.loss import Scorer
        from softcot.modes import CoTMode
        from softcot.rollout import RolloutConfig
        self.model, self.tok, self.prompts, self.args, self.device = model, tok, prompts, args, device
        self.mode = CoTMode(kind)
        self.rcfg = RolloutConfig(max_cot_tokens=args.cot_tokens, max_answer_tokens=args.answer_tokens,
                                  marker=NEVER_MARKER, answer_temperature=1.0)
        self.scorer = Scorer(model, chunk=args.head_chunk, checkpoint_head=device.type == "cuda")
        self.opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
        self.gen = torch.Generator(device=device).manual_seed(args.seed)
        self.rng = random.Random(args.seed)

    def run(self, measure_memory=True, phase_hook=None) -> dict:
        from softcot.loss import policy_loss, rloo_advantages
        from softcot.rewards import math_reward
        from softcot.rollout import rollout
        a, dev, B = self.args, self.device, len(self.prompts)
        t, mem = {}, {}
        ctx = (lambda: PeakMemory(dev)) if measure_memory else (lambda: contextlib.nullcontext())
        hook = phase_hook or (lambda name: contextlib.nullcontext())
        t_all = time.perf_counter()

        self.model.eval()
        with hook("rollout"), ctx() as m, Timer(dev) as tm, no_early_stop(self.model, self.tok), \
                autocast_ctx(dev, a.dtype):
            ro = rollout(self.model, self.tok, self.prompts, self.mode, self.rcfg, generator=self.gen)
        t["rollout"], mem["rollout"] = tm.s, getattr(m, "peak_delta", None)
        self.model.train()

        with hook("reward"), Timer(dev) as tm:
            math_reward(self.prompts, ro.completions, answer=["72"] * B)
            rewards = [self.rng.choice([0.0, 10.0, 100.0]) for _ in range(B)]
            adv = rloo_advantages(rewards, a.group)
        t["reward"] = tm.s

        t["score_fwd"] = t["backward"] = 0.0
        mem["score_fwd"] = mem["backward"] = 0
        for s in range(0, B, a.micro_batch):
            rows = list(range(s, min(s + a.micro_batch, B)))
            sub = ro.select(rows)
            with hook("score_fwd"), ctx() as m, Timer(dev) as tm, autocast_ctx(dev, a.dtype):
                terms = self.scorer(sub)
                loss = policy_loss(terms, adv[rows[0]:rows[-1] + 1], B)
            t["score_fwd"] += tm.s
            mem["score_fwd"] = max(mem["score_fwd"], getattr(m, "peak_delta", None) or 0)
            with hook("backward"), ctx() as m, Timer(dev) as tm:
                loss.backward()
            t["backward"] += tm.s
            mem["backward"] = max(mem["backward"], getattr(m, "peak_delta", None) or 0)
            del terms, loss

        with hook("optim"), ctx() as m, Timer(dev) as tm:
            gn = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf")))
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
        t["optim"], mem["optim"] = tm.s, getattr(m, "peak_delta", None)
        sync(dev)
        t["step"] = time.perf_counter() - t_all
        lc = max(len(c) for c in ro.cot_ids)
        return {"times": t, "mem": mem if measure_memory else None, "grad_norm": gn,
                "S": int(ro.input_ids.shape[1]), "cot_positions": lc, "answer_positions": max(len(x) for x in ro.answer_ids)}


def profiled_step(step: Step, device, profile_ops: bool = True) -> dict:
    """Per phase: wall, time inside the decoder's forward and the LM head (module hooks with a sync; one
    un-profiled step), then (profile_ops) aten self-CPU time, op count, GPU kernel busy time and the top ops
    (a second step under torch.profiler)."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile
    from softcot.modeling import decoder_of
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    res = {p: {"wall_s": 0.0, "model_fwd_s": 0.0, "head_s": 0.0, "wall_prof_s": 0.0, "aten_self_cpu_s": 0.0,
               "gpu_kernel_s": 0.0, "n_aten_ops": 0, "top_ops": {}} for p in PHASES}
    model = step.model
    clocks = {"body": 0.0, "head": 0.0}
    starts = {}

    def pre(name):
        def f(*_):
            sync(device)
            starts[name] = time.perf_counter()
        return f

    def post(name):
        def f(*_):
            sync(device)
            clocks[name] += time.perf_counter() - starts[name]
        return f

    @contextlib.contextmanager
    def hooked(name):
        c0 = dict(clocks)
        sync(device)
        t0 = time.perf_counter()
        yield
        sync(device)
        r = res[name]
        r["wall_s"] += time.perf_counter() - t0
        r["model_fwd_s"] += clocks["body"] - c0["body"]
        r["head_s"] += clocks["head"] - c0["head"]

    @contextlib.contextmanager
    def profiled(name):
        with profile(activities=acts, profile_memory=device.type == "cpu") as prof:
            sync(device)
            t0 = time.perf_counter()
            yield
            sync(device)
            wall = time.perf_counter() - t0
        r = res[name]
        r["wall_prof_s"] += wall
        kern = []
        for e in prof.events():
            if e.device_type == DeviceType.CPU and e.name.startswith("aten::"):
                r["aten_self_cpu_s"] += e.self_cpu_time_total / 1e6
                r["n_aten_ops"] += 1
                r["top_ops"][e.name] = r["top_ops"].get(e.name, 0.0) + e.self_cpu_time_total / 1e6
            elif e.device_type == DeviceType.CUDA:
                kern.append((e.time_range.start, e.time_range.end))
        busy, end = 0.0, -1.0                       # union of kernel intervals (us)
        for s, e_ in sorted(kern):
            if e_ > end:
                busy += e_ - max(s, end)
                end = e_
        r["gpu_kernel_s"] += busy / 1e6
        if device.type == "cpu":      # peak live tensor bytes: allocations (op self memory, [memory] frees) in time order
            evs = [(e.time_range.start, e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage)
                   for e in prof.events() if e.device_type == DeviceType.CPU]
            cur = peak = 0
            for _, m in sorted(x for x in evs if x[1]):
                cur += m
                peak = max(peak, cur)
            r["peak_tensor_bytes"] = max(r.get("peak_tensor_bytes", 0), peak)

    handles = [decoder_of(model).register_forward_pre_hook(pre("body")),
               decoder_of(model).register_forward_hook(post("body")),
               model.get_output_embeddings().register_forward_pre_hook(pre("head")),
               model.get_output_embeddings().register_forward_hook(post("head"))]
    try:
        mem_run = step.run(measure_memory=True, phase_hook=hooked)
    finally:
        for h in handles:
            h.remove()
    res["_memory"] = mem_run["mem"]
    if profile_ops:
        step.run(measure_memory=False, phase_hook=profiled)
    for p in PHASES:
        res[p]["top_ops"] = dict(sorted(res[p]["top_ops"].items(), key=lambda kv: -kv[1])[:12])
    res["_tensor_peak"] = {p: res[p].pop("peak_tensor_bytes", None) for p in PHASES}
    return res


def profiler_overhead_per_call(n: int = 20000) -> dict:
    """Calibration: wall per trivial op call (x.add(1) on one element) without and with the profiler, and the
    aten self time the profiler records for it."""
    from torch.profiler import ProfilerActivity, profile
    x = torch.ones(1)

    def loop():
        for _ in range(n):
            x.add(1)
    loop()
    t0 = time.perf_counter()
    loop()
    plain = (time.perf_counter() - t0) / n
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        loop()
        prof_wall = (time.perf_counter() - t0) / n
    aten = sum(e.self_cpu_time_total for e in prof.events() if e.name.startswith("aten::")) / 1e6 / n
    return {"plain_us": plain * 1e6, "profiled_wall_us": prof_wall * 1e6, "profiled_aten_self_us": aten * 1e6}


def batch_scaling(model, tok, prompts, kind, args, device, repeats=3) -> dict:
    """Rollout time at B and B/4 rows: t(B) = fixed + B * per_row. The fixed part (per-step costs that do not
    grow with the batch: Python, HF module plumbing, op dispatch, kernel launches) over t(B) is the rollout's
    overhead share, measured without any profiler."""
    from softcot.modes import CoTMode
    from softcot.rollout import RolloutConfig, rollout
    B = len(prompts)
    b = max(1, B // 4)
    small = prompts[::B // b][:b]
    cfg = RolloutConfig(max_cot_tokens=args.cot_tokens, max_answer_tokens=args.answer_tokens, marker=NEVER_MARKER)
    ts = {B: [], b: []}
    model.eval()
    with no_early_stop(model, tok), autocast_ctx(device, args.dtype):
        for r in range(repeats + 1):
            for rows in (prompts, small):
                g = torch.Generator(device=device).manual_seed(r)
                with Timer(device) as t:
                    rollout(model, tok, rows, CoTMode(kind), cfg, generator=g)
                if r:
                    ts[len(rows)].append(t.s)
    tB, tb = median(ts[B]), median(ts[b])
    per_row = (tB - tb) / (B - b) if B > b else float("nan")
    fixed = tB - B * per_row
    return {"B": B, "b": b, "t_B_s": tB, "t_b_s": tb, "per_row_s": per_row, "fixed_s": fixed,
            "fixed_frac": fixed / tB if tB else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap, batch=None, repeats=5)
    ap.add_argument("--modes", default="hard,soft,fuzzy", help="comma list of hard | soft | fuzzy")
    ap.add_argument("--cot-tokens", type=int, default=None, help="L (default 64 tiny, 32 otherwise)")
    ap.add_argument("--answer-tokens", type=int, default=None, help="A (default 16)")
    ap.add_argument("--group", type=int, default=8, help="G, rollouts per prompt (RLOO groups); divides --batch")
    ap.add_argument("--micro-batch", type=int, default=None, help="rollouts per forward/backward (default --batch)")
    ap.add_argument("--head-chunk", type=int, default=4096, help="Scorer chunk (scored positions per LM-head call)")
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--no-profile", action="store_true", help="skip the hooked and profiled steps (outside-compute fraction)")
    ap.add_argument("--no-scaling", action="store_true", help="skip the rollout batch-scaling estimate (B vs B/4 rows)")
    args = ap.parse_args(argv)
    device = setup_torch(args)
    tiny = args.model == "tiny"
    args.cot_tokens = args.cot_tokens or (64 if tiny else 32)
    args.answer_tokens = args.answer_tokens or 16
    args.batch = args.batch or (32 if tiny else 8)
    args.micro_batch = args.micro_batch or args.batch
    if args.batch % args.group:
        ap.error(f"--group {args.group} must divide --batch {args.batch}")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]

    model, tok, questions, template, load_s = load(args.model, device, torch.float32, args.template)   # fp32 weights (+autocast)
    n_prompts = args.batch // args.group           # G consecutive rollouts per prompt, as the trainer lays them out
    prompts = [p for p in make_prompts(questions, template, n_prompts) for _ in range(args.group)]
    V, d = model.get_input_embeddings().weight.shape
    print(f"model {args.model} (V={V}, d={d}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, "
          f"loaded in {load_s:.1f}s) on {device}, {'bf16 autocast' if args.dtype == 'bf16' else 'fp32'}, threads "
          f"{torch.get_num_threads()}; {args.batch} rollouts ({args.batch // args.group} prompts x G={args.group}), "
          f"L={args.cot_tokens}, A={args.answer_tokens}, micro-batch {args.micro_batch}; "
          f"{args.warmup} warm-up + {args.repeats} timed steps per mode", flush=True)

    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out_modes, rows, prof_rows, scaling_rows = {}, [], [], []
    calib = profiler_overhead_per_call() if not args.no_profile and device.type == "cpu" else None
    for kind in modes:
        model.load_state_dict(init)             # every mode starts from the same weights
        step = Step(model, tok, prompts, kind, args, device)
        runs = []
        for r in range(-args.warmup, args.repeats):
            res = step.run(measure_memory=False)
            if r >= 0:
                runs.append(res)
                print(f"  {kind} step {r + 1}/{args.repeats}: " +
                      ", ".join(f"{p} {res['times'][p]:.2f}s" for p in PHASES) + f", total {res['times']['step']:.2f}s",
                      flush=True)
        med = {p: median([x["times"][p] for x in runs]) for p in PHASES + ("step",)}
        row = {"mode": kind, **{f"{p}_s": med[p] for p in PHASES}, "step_s": med["step"]}
        for p in ("rollout", "score_fwd", "backward", "optim"):
            row[f"{p}_pct"] = 100 * med[p] / med["step"]
        rows.append(row)
        prof = scal = None
        if not args.no_profile:
            prof = profiled_step(step, device)
            memrun = prof.pop("_memory")
            tpeak = prof.pop("_tensor_peak")
            if device.type == "cpu":
                row.update({f"{p}_tensor_MiB": (tpeak[p] or 0) / 2 ** 20 for p in PHASES if p != "reward"})
        else:
            memrun = step.run(measure_memory=True)["mem"]
        mem = {p: (memrun[p] or 0) for p in PHASES if p != "reward"}
        row.update({f"{p}_peak_MiB": mem[p] / 2 ** 20 for p in mem})
        if prof:
            for p, v in prof.items():
                v["inside_model_frac"] = (v["model_fwd_s"] + v["head_s"]) / v["wall_s"] if v["wall_s"] else None
                v["outside_aten_frac"] = max(0.0, 1 - v["aten_self_cpu_s"] / v["wall_prof_s"]) if v["wall_prof_s"] else None
                if device.type == "cuda":
                    v["gpu_idle_frac"] = max(0.0, 1 - v["gpu_kernel_s"] / v["wall_prof_s"]) if v["wall_prof_s"] else None
                prof_rows.append({"mode": kind, "phase": p, **{k: x for k, x in v.items() if k != "top_ops"}})
            tot = {k: sum(v[k] for v in prof.values()) for k in ("wall_s", "wall_prof_s", "aten_self_cpu_s",
                                                                 "gpu_kernel_s", "n_aten_ops")}
            prof_rows.append({"mode": kind, "phase": "STEP", **tot,
                              "outside_aten_frac": 1 - tot["aten_self_cpu_s"] / tot["wall_prof_s"],
                              **({"gpu_idle_frac": 1 - tot["gpu_kernel_s"] / tot["wall_prof_s"]}
                                 if device.type == "cuda" else {})})
            if not args.no_scaling and args.batch >= 4:
                scal = batch_scaling(model, tok, prompts, kind, args, device)
                scaling_rows.append({"mode": kind, **scal})
        out_modes[kind] = {"runs": runs, "median_s": med, "peak_bytes": mem, "profile": prof, "batch_scaling": scal,
                           "S": runs[-1]["S"], "cot_positions": runs[-1]["cot_positions"],
                           "answer_positions": runs[-1]["answer_positions"]}

    print("\nStep time split (medians, seconds; pct of the step)")
    print(table(rows, [("mode", "mode", "")] + [(f"{p}_s", p, ".3f") for p in PHASES] + [("step_s", "step", ".3f")] +
                [(f"{p}_pct", f"{p}%", ".0f") for p in ("rollout", "score_fwd", "backward", "optim")]))
    print(f"\nPeak memory above the phase's start, one extra (un-timed) step, MiB; {peak_memory_method(device)}")
    mcols = [(f"{p}_peak_MiB", p, ".1f") for p in ("rollout", "score_fwd", "backward", "optim")]
    if device.type == "cpu" and not args.no_profile:
        mcols = [(f"{p}_peak_MiB", f"{p} RSS", ".1f") for p in ("rollout", "score_fwd", "backward", "optim")] + \
                [(f"{p}_tensor_MiB", f"{p} tensors", ".1f") for p in ("rollout", "score_fwd", "backward", "optim")]
        print("(RSS = peak resident memory, allocator slack and fragmentation included: an upper bound; tensors = "
              "peak live tensor bytes from\n torch.profiler(profile_memory=True): op allocations and frees in time "
              "order, the CPU analogue of max_memory_allocated)")
    print(table(rows, [("mode", "mode", "")] + mcols))
    if prof_rows:
        print("\nWhere the time goes, per phase. wall = un-profiled step with module hooks; fwd / head = time inside\n"
              "the decoder's forward calls / the LM head (hooks; for the rollout, 1 - in-model = sampling, mixing and\n"
              "bookkeeping around the model); aten = sum of self CPU time of all aten:: ops in a second step run under\n"
              "torch.profiler (nested ops counted once), wall(prof) its wall; outside = 1 - aten / wall(prof): host time\n"
              "outside ATen ops (Python, HF module code, the rollout loop, tokenizer calls).")
        if calib:
            print(f"  calibration: a trivial op call costs {calib['plain_us']:.1f} us plain, {calib['profiled_wall_us']:.1f} us "
                  f"under the profiler, which books {calib['profiled_aten_self_us']:.1f} us of it as aten self time: aten\n"
                  f"  self time includes per-op dispatch/allocation cost, and the profiler adds ~"
                  f"{calib['profiled_wall_us'] - calib['plain_us']:.1f} us/op of wall, so 'outside' is approximate.")
        cols = [("mode", "mode", ""), ("phase", "phase", ""), ("wall_s", "wall", ".3f"), ("model_fwd_s", "fwd", ".3f"),
                ("head_s", "head", ".3f"), ("inside_model_frac", "in-model", ".2f"), ("wall_prof_s", "wall(prof)", ".3f"),
                ("aten_self_cpu_s", "aten", ".3f"), ("n_aten_ops", "#ops", "d"), ("outside_aten_frac", "outside", ".2f")]
        if device.type == "cuda":
            cols += [("gpu_kernel_s", "gpu busy", ".3f"), ("gpu_idle_frac", "gpu idle", ".2f")]
        print(table(prof_rows, cols))
        for kind in modes:
            pr = out_modes[kind]["profile"]
            if pr:
                top = pr["rollout"]["top_ops"]
                print(f"  top aten ops by self time in the {kind} rollout: " +
                      ", ".join(f"{k.removeprefix('aten::')} {v:.3f}s" for k, v in list(top.items())[:8]))
    if scaling_rows:
        print("\nRollout batch scaling (no profiler): t(B) = fixed + B * per_row from rollouts of B and B/4 rows; "
              "fixed = per-step\ncost independent of the batch (Python, module plumbing, dispatch, launches, and "
              "reading the weights once per step:\nmemory-bound on a CPU for a model the size of SmolLM2, so there "
              "'fixed' over-states the overhead)")
        print(table(scaling_rows, [("mode", "mode", ""), ("B", "B", "d"), ("t_B_s", "t(B) s", ".3f"), ("b", "b", "d"),
                                   ("t_b_s", "t(b) s", ".3f"), ("per_row_s", "per row s", ".4f"),
                                   ("fixed_s", "fixed s", ".3f"), ("fixed_frac", "fixed/t(B)", ".2f")]))
    path = write_json({"env": env_info(device), "model": args.model, "V": V, "d": d,
                       "precision": "bf16 autocast, fp32 weights" if args.dtype == "bf16" else "fp32",
                       "batch": args.batch, "group": args.group, "micro_batch": args.micro_batch,
                       "L": args.cot_tokens, "A": args.answer_tokens, "warmup": args.warmup, "repeats": args.repeats,
                       "rows": rows, "profile_rows": prof_rows, "scaling_rows": scaling_rows,
                       "profiler_calibration": calib, "modes": out_modes,
                       "method": {"outside_compute": "1 - sum(self CPU time of aten:: ops)/wall under torch.profiler "
                                                     "(CPU); 1 - union(CUDA kernel intervals)/wall (GPU); rollout: "
                                                     "fixed share from batch scaling t(B) = fixed + B*per_row",
                                  "peak_memory": peak_memory_method(device)}}, "bench_step", args)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
