"""The paper's model shapes with random weights, no download: peak memory against `softcot plan`, RL step
time, and hard / soft / fuzzy rollout throughput against generate().

    python bench/bench_shapes.py --device cuda --dtype bf16            # llama3b, llama8b, qwen3b on one GPU
    python bench/bench_shapes.py --scale 8 --shapes llama3b,qwen3b      # CPU: every dimension / 8, end to end

Shapes: Llama-3.2-3B and Llama-3.1-8B (transformers LlamaConfig) and Qwen2.5-3B (Qwen2Config), with the
hyper-parameters of softcot.plan.ARCHS (the table the memory plan uses); `--scale s` divides hidden size,
intermediate size, layers, heads and vocabulary by s. The tokenizer is a word-level one with the model's
vocabulary size (prompts are P random words = P tokens); a marker nobody writes and a head hook that bans
EOS keep every rollout at the full budget, as in bench_rollout.py.

Per shape, one GPU (or the CPU), B = 2 prompts x G = 32 rollouts, L = 128 CoT tokens, A = 32 answer tokens,
`--micro-batch` rollouts per forward/backward, gradient checkpointing on, fp32 weights (bf16 autocast with
--dtype bf16), as the trainer runs:
  throughput  rollouts of the 64 rows in hard, soft and fuzzy mode and model.generate() sampling the same
              number of tokens: generated tokens/s and ours/generate;
  memory      the phases of an RL step, each with the peak above its start (CUDA: max_memory_allocated;
              CPU: peak RSS), against the plan's terms that the phase allocates: rollout (autocast casts,
              KV cache, rollout transient), update = teacher-forced forward + backward of every micro-batch
              (gradients, casts, activations, LM-head chunk), optimizer (AdamW temporary). When the plan says
              the whole step fits (one process, DDP terms), two steps run and the second (steady state, AdamW
              states allocated) is measured and timed. Otherwise (8B: fp32 AdamW needs 16 bytes a parameter)
              only what fits runs: the rollout, and the forward + backward of one micro-batch if weights,
              gradients and casts fit, each against the same terms.
Writes $BENCH_OUT/bench_shapes_<device>.json after every shape (a timeout keeps what was done).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import random
import sys
import time

import torch

from common import (NEVER_MARKER, PeakMemory, Timer, env_info, no_early_stop, setup_torch, sync, table,
                    write_json)

SHAPES = {"llama3b": "meta-llama/Llama-3.2-3B-Instruct", "llama8b": "meta-llama/Llama-3.1-8B-Instruct",
          "qwen3b": "Qwen/Qwen2.5-3B-Instruct"}
PHASE_TERMS = {"rollout": ("autocast bf16 weight casts", "KV cache", "rollout transient"),
               "update": ("gradients (fp32)", "autocast bf16 weight casts", "activations", "LM-head chunk"),
               "optimizer": ("AdamW temporary",)}
METHODS = ("hard", "soft", "fuzzy", "generate")
GiB = 1024 ** 3


def scaled(arch, s: int):
    """`arch` with hidden, intermediate, layers, heads and vocabulary divided by s (head_dim follows)."""
    if s <= 1:
        return arch
    kv = max(1, arch.kv_heads // s)
    heads = max(kv, arch.heads // s // kv * kv)
    hidden = max(heads * 8, arch.hidden // s // heads * heads)
    return dataclasses.replace(arch, name=f"{arch.name} / {s}", hidden=hidden, heads=heads, kv_heads=kv,
                               head_dim=hidden // heads, intermediate=max(8, arch.intermediate // s),
                               layers=max(1, arch.layers // s), vocab=max(512, arch.vocab // s))


def build_model(arch, device):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    cls, conf = (Qwen2ForCausalLM, Qwen2Config) if arch.model_type == "qwen2" else (LlamaForCausalLM, LlamaConfig)
    config = conf(**arch.hf_config(), pad_token_id=0, bos_token_id=1, eos_token_id=2)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = cls(config)                        # random weights, fp32 master weights as the trainer keeps
    model.generation_config.pad_token_id = 0
    return model.eval()


def word_tokenizer(vocab: int):
    """A word-level tokenizer with exactly `vocab` ids: <pad> <bos> <eos> <unk>, then w4 ... w{vocab-1}."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    words = {t: i for i, t in enumerate(("<pad>", "<bos>", "<eos>", "<unk>"))}
    words.update({f"w{i}": i for i in range(4, vocab)})
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", padding_side="left", model_max_length=1 << 20)


def make_prompts(n: int, P: int, vocab: int, seed: int = 0) -> list[str]:
    """n prompts of P, P-8, P-16, P-24 tokens (left padding differs per row)."""
    rng = random.Random(seed)
    return [" ".join(f"w{rng.randrange(4, vocab)}" for _ in range(P - 8 * (i % 4))) for i in range(n)]


def autocast(device, dtype_name):
    return (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if dtype_name == "bf16"
            else contextlib.nullcontext())


def plan_for(arch, args, device, P: int):
    from softcot.plan import Setting, estimate
    from softcot.schema import CoTMode, RolloutConfig, TrainConfig
    on_gpu = device.type == "cuda"
    train = TrainConfig(mode=CoTMode(args.mode), prompts_per_step=args.prompts, group_size=args.group,
                        rollout_batch=args.prompts * args.group, micro_batch=args.micro_batch,
                        rollout=RolloutConfig(max_cot_tokens=args.cot_tokens, max_answer_tokens=args.answer_tokens),
                        gradient_checkpointing=True, head_chunk=args.head_chunk,
                        precision="bf16" if args.dtype == "bf16" else "fp32")
    mem = torch.cuda.get_device_properties(device).total_memory / GiB if on_gpu else 1e9
    return estimate(Setting(arch=arch, train=train, gpus=1 if on_gpu else 0, gpu_memory_gb=mem, prompt_tokens=P))


def planned(p, phase: str) -> float:
    return sum(p.term(name, phase) for name in PHASE_TERMS[phase])


# --------------------------------------------------------------------------- measurements

def throughput(model, tok, prompts, args, device) -> dict:
    from softcot.modes import CoTMode
    from softcot.rollout import RolloutConfig, rollout
    L, A, rows = args.cot_tokens, args.answer_tokens, len(prompts)
    cfg = RolloutConfig(max_cot_tokens=L, max_answer_tokens=A, marker=NEVER_MARKER, answer_temperature=1.0)
    out = {}
    with torch.no_grad(), no_early_stop(model, tok), autocast(device, args.dtype):
        rollout(model, tok, prompts[:4], CoTMode("soft"), dataclasses.replace(cfg, max_cot_tokens=4))   # warm-up
        for method in METHODS:
            g = torch.Generator(device=device).manual_seed(args.seed)
            with Timer(device) as t:
                if method == "generate":
                    torch.manual_seed(args.seed)
                    enc = tok(prompts, return_tensors="pt", padding=True)
                    enc = {k: enc[k].to(device) for k in ("input_ids", "attention_mask")}
                    new = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                         max_new_tokens=L + A, min_new_tokens=L + A)[:, enc["input_ids"].shape[1]:]
                    tok.batch_decode(new, skip_special_tokens=True)
                else:
                    rollout(model, tok, prompts, CoTMode(method), cfg, generator=g)
            out[method] = {"s": t.s, "tok_per_s": rows * (L + A) / t.s}
    for m in ("hard", "soft", "fuzzy"):
        out[m]["over_generate"] = out[m]["tok_per_s"] / out["generate"]["tok_per_s"]
    return out


class RLStep:
    """The trainer's step on one process (softcot.trainer._collect / _update): rollout, RLOO advantages from
    seeded random rewards, Scorer + policy_loss + backward per micro-batch, AdamW."""

    def __init__(self, model, tok, prompts, args, device):
        from softcot.loss import Scorer
        from softcot.modes import CoTMode
        from softcot.rollout import RolloutConfig
        self.model, self.tok, self.prompts, self.args, self.device = model, tok, prompts, args, device
        self.mode = CoTMode(args.mode)
        self.rcfg = RolloutConfig(max_cot_tokens=args.cot_tokens, max_answer_tokens=args.answer_tokens,
                                  marker=NEVER_MARKER, answer_temperature=1.0)
        self.scorer = Scorer(model, chunk=args.head_chunk, checkpoint_head=device.type == "cuda")
        self.opt = None
        self.rng = random.Random(args.seed)
        self.gen = torch.Generator(device=device).manual_seed(args.seed)

    def run(self, micro_batches: int | None = None, optimizer: bool = True) -> dict:
        """One step; `micro_batches` limits the update to the first few (partial mode)."""
        from softcot.loss import policy_loss, rloo_advantages
        from softcot.rollout import rollout
        a, dev, n = self.args, self.device, len(self.prompts)
        t, mem = {}, {}
        self.model.eval()
        with PeakMemory(dev) as m, Timer(dev) as tm, torch.no_grad(), no_early_stop(self.model, self.tok), \
                autocast(dev, a.dtype):
            ro = rollout(self.model, self.tok, self.prompts, self.mode, self.rcfg, generator=self.gen)
        t["rollout"], mem["rollout"] = tm.s, m.peak_delta
        self.model.train()
        adv = rloo_advantages([self.rng.choice([0.0, 10.0, 100.0]) for _ in range(n)], a.group)
        starts = list(range(0, n, a.micro_batch))[:micro_batches]
        with PeakMemory(dev) as m, Timer(dev) as tm:
            for s in starts:
                rows = list(range(s, min(s + a.micro_batch, n)))
                with autocast(dev, a.dtype):
                    loss = policy_loss(self.scorer(ro.select(rows)), adv[rows[0]:rows[-1] + 1], n)
                loss.backward()
                del loss
        t["update"], mem["update"] = tm.s, m.peak_delta
        if optimizer:
            if self.opt is None:
                self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-6)
            with PeakMemory(dev) as m, Timer(dev) as tm:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), float("inf"))
                self.opt.step()
            t["optimizer"], mem["optimizer"] = tm.s, m.peak_delta
        self.model.zero_grad(set_to_none=True)
        sync(dev)
        t["step"] = sum(t.values())
        return {"times": t, "mem": mem, "S": int(ro.input_ids.shape[1]), "P": int(ro.cot_start)}


def bench_shape(name: str, args, device) -> dict:
    from softcot.plan import ARCHS
    arch = scaled(ARCHS[SHAPES[name]], args.scale)
    t0 = time.perf_counter()
    model = build_model(arch, device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    tok = word_tokenizer(arch.vocab)
    prompts = make_prompts(args.prompts * args.group, args.prompt_tokens, arch.vocab, args.seed)
    res = {"shape": name, "arch": dataclasses.asdict(arch), "params": arch.params, "build_s": time.perf_counter() - t0}
    res["throughput"] = throughput(model, tok, prompts, args, device)
    plan = plan_for(arch, args, device, args.prompt_tokens)
    res["plan_peak_gib"], res["plan_fits"] = plan.peak / GiB, plan.fits
    step = RLStep(model, tok, prompts, args, device)
    if plan.fits:
        step.run()                                            # the first step creates the AdamW states
        out = step.run()
        res["mode"] = "full step (second, steady state)"
    else:
        # What fits one device: weights + gradients + casts + activations, no AdamW states (16 B a parameter).
        cap = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else float("inf")
        need = (plan.term("weights (fp32)", "update") + planned(plan, "update")
                + plan.term("CUDA context + allocator", "update"))
        out = step.run(micro_batches=1 if need < 0.97 * cap else 0, optimizer=False)
        res["mode"] = ("rollout + forward/backward of one micro-batch" if need < 0.97 * cap else "rollout only")
        if need >= 0.97 * cap:
            out["mem"].pop("update")
            out["times"].pop("update")
    res["times"] = out["times"]
    plan = plan_for(arch, args, device, out["P"])                # the prompt length the rollout really had
    res["memory"] = {ph: {"measured_gib": v / GiB if v is not None else None, "planned_gib": planned(plan, ph) / GiB,
                          "ratio": (v / planned(plan, ph)) if v and planned(plan, ph) else None}
                     for ph, v in out["mem"].items()}
    res["S"], res["P"] = out["S"], out["P"]
    del step, model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="llama3b,llama8b,qwen3b", help=f"comma list of {', '.join(SHAPES)}")
    ap.add_argument("--scale", type=int, default=1, help="divide every dimension by this (CPU runs)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16: bf16 autocast over fp32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="soft", choices=["hard", "soft", "fuzzy"], help="the RL step's CoT mode")
    ap.add_argument("--prompts", type=int, default=2, help="B")
    ap.add_argument("--group", type=int, default=32, help="G")
    ap.add_argument("--cot-tokens", type=int, default=128, help="L")
    ap.add_argument("--answer-tokens", type=int, default=32, help="A")
    ap.add_argument("--prompt-tokens", type=int, default=128, help="P of the longest prompt")
    ap.add_argument("--micro-batch", type=int, default=8)
    ap.add_argument("--head-chunk", type=int, default=4096)
    ap.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    device = setup_torch(args)
    args.model = ""
    results = {"env": env_info(device), "args": vars(args), "shapes": []}
    for name in args.shapes.split(","):
        if name not in SHAPES:
            sys.exit(f"--shapes: unknown {name!r}; choose from {', '.join(SHAPES)}")
        t0 = time.perf_counter()
        r = bench_shape(name, args, device)
        r["wall_s"] = time.perf_counter() - t0
        results["shapes"].append(r)
        path = write_json(results, "bench_shapes", args)
        tp = r["throughput"]
        print(f"\n{r['arch']['name']}: {r['params'] / 1e9:.3g} B parameters, {r['mode']}, S = {r['S']} (P = {r['P']}); "
              f"plan peak {r['plan_peak_gib']:.1f} GiB ({'fits' if r['plan_fits'] else 'does not fit'} one device)")
        print(table([{"method": m, **tp[m]} for m in METHODS],
                    [("method", "rollout", ""), ("s", "s", ".2f"), ("tok_per_s", "tokens/s", ".0f"),
                     ("over_generate", "/ generate", ".2f")]))
        print(table([{"phase": ph, "s": r["times"].get(ph), **v} for ph, v in r["memory"].items()],
                    [("phase", "phase", ""), ("s", "s", ".2f"), ("measured_gib", "peak above start GiB", ".3f"),
                     ("planned_gib", "plan GiB", ".3f"), ("ratio", "measured / plan", ".2f")]))
        print(f"step {r['times']['step']:.2f} s; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
