"""Estimator diagnostics (issue 7): gradient signal-to-noise per CoT mode and per loss term.

    softcot diagnose --model results/toy/base --data results/toy/data/train.jsonl --modes hard soft fuzzy \
        --batches 20 --prompts 8 --group 8 --template toy --out results/toy/study/snr.json

For each mode, `--batches` independent batches (B prompts x G rollouts, RLOO advantages, the paper's loss)
give gradient estimates g_1..g_n of the same expected gradient, at fixed parameters. Reported:
  snr        |mean g|^2 / mean |g|^2      (1 = noiseless; about 1/n for pure noise, so compare with snr_null)
  snr_unbiased  (|mean g|^2 - tr(Cov)/n) / mean |g|^2, an unbiased numerator: about 0 for pure noise, so it
             compares across different n (the issue-7 prototype's soft and fuzzy values match this form)
  cos        mean cosine between the estimates of independent batch pairs
  grad_norm  mean |g|
each for the whole loss and for each term alone (CoT log-density / log-prob, answer log-prob), plus a null
control: the same with advantages shuffled within the batch (no signal, same noise).

With `--diversity N` it also measures where the sampled diversity comes from: N samples per prompt for each
of `--diversity-prompts` prompts, in three conditions per mode, each scored with the unbiased pass@k:
  cot_noise        the mode's sampled CoT (hard: tokens drawn at tau; soft/fuzzy: Gaussian noise), greedy answer
                   (the paper's *_sample inference setting)
  answer_sampling  the greedy CoT (hard argmax; soft/fuzzy sigma = 0), answer tokens sampled at T = 1
  both             sampled CoT and answers sampled at T = 1 (the training rollouts)
reporting pass@1, pass@N, distinct final answers and distinct CoT texts (greedy shadows) per prompt.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math

import torch

from softcot.io import write_json
from softcot.loss import Scorer, rloo_advantages
from softcot.modeling import ModelConfig, load_model
from softcot.modes import CoTMode
from softcot.passk import pass_at_k
from softcot.prompt import build_prompt
from softcot.rewards import CORRECT, load_reward
from softcot.rollout import RolloutConfig, rollout
from softcot.trainer import _columns, load_records


def _flat_grad(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float()
                      for p in model.parameters()])


def _stats(gs: list[torch.Tensor]) -> dict:
    G = torch.stack(gs)                                  # (n, P)
    n = G.shape[0]
    mean = G.mean(0)
    second = G.pow(2).sum(1).mean()
    snr = float(mean.pow(2).sum() / second)
    # |mean g|^2 over-estimates |E g|^2 by tr(Cov)/n; subtracting the sample estimate of that term gives an
    # unbiased numerator, so pure noise scores about 0 instead of about 1/n (comparable across n).
    var = (G - mean).pow(2).sum(1).sum() / max(1, n - 1)
    snr_unbiased = float((mean.pow(2).sum() - var / n) / second)
    cos = []
    for i in range(0, len(gs) - 1, 2):
        cos.append(float(torch.nn.functional.cosine_similarity(G[i], G[i + 1], dim=0)))
    return {"snr": snr, "snr_unbiased": snr_unbiased, "cos": sum(cos) / max(1, len(cos)),
            "grad_norm": float(G.norm(dim=1).mean())}


def gradient_estimates(model, tok, records, mode: CoTMode, rcfg: RolloutConfig, template: str, prompts: int,
                       group: int, batches: int, seed: int, reward_fn) -> dict:
    g = torch.Generator().manual_seed(seed)
    pick = torch.Generator().manual_seed(seed + 1)
    scorer = Scorer(model)
    out = {k: [] for k in ("total", "cot", "answer", "null")}
    rewards_seen = []
    for _ in range(batches):
        idx = torch.randint(len(records), (prompts,), generator=pick).tolist()
        recs = [records[i] for i in idx for _ in range(group)]
        texts = [build_prompt(r["question"], template) for r in recs]
        model.eval()
        ro = rollout(model, tok, texts, mode, rcfg, generator=g)
        rewards = reward_fn(texts, ro.completions, **_columns(recs))
        rewards_seen += [r for r in rewards if r is not None]
        adv = rloo_advantages(rewards, group)
        null = adv[torch.randperm(len(adv), generator=pick)]
        n = len(adv)
        for key, fn in (("total", lambda t: adv * (t["cot"] + t["answer"])), ("cot", lambda t: adv * t["cot"]),
                        ("answer", lambda t: adv * t["answer"]), ("null", lambda t: null * (t["cot"] + t["answer"]))):
            model.zero_grad(set_to_none=True)
            terms = scorer(ro)
            (-(fn(terms)).sum() / n).backward()
            out[key].append(_flat_grad(model))
    model.zero_grad(set_to_none=True)
    res = {key: _stats(gs) for key, gs in out.items()}
    res["reward_mean"] = sum(rewards_seen) / max(1, len(rewards_seen))
    res["batches"] = batches
    return res


DIVERSITY_CONDITIONS = {            # name: (sampled CoT, answer temperature)
    "cot_noise": (True, 0.0),
    "answer_sampling": (False, 1.0),
    "both": (True, 1.0),
}


@torch.no_grad()
def diversity_sources(model, tok, records, kind: str, rcfg: RolloutConfig, template: str, n: int, prompts: int,
                      seed: int, reward_fn, gamma: float = 0.33) -> dict:
    """pass@1, pass@n and distinct answers / CoTs per prompt, for each condition of DIVERSITY_CONDITIONS."""
    recs = records[:prompts]
    out = {}
    for name, (sample_cot, answer_t) in DIVERSITY_CONDITIONS.items():
        g = torch.Generator().manual_seed(seed)
        mode = CoTMode(kind, gamma=gamma, greedy=not sample_cot)
        cfg = dataclasses.replace(rcfg, answer_temperature=answer_t)
        rows = [r for r in recs for _ in range(n)]
        texts = [build_prompt(r["question"], template) for r in rows]
        model.eval()
        ro = rollout(model, tok, texts, mode, cfg, generator=g)
        rewards = reward_fn(texts, ro.completions, **_columns(rows))
        p1, pn, answers, cots = [], [], [], []
        for i in range(len(recs)):
            sl = slice(i * n, (i + 1) * n)
            c = sum(1 for r in rewards[sl] if r == CORRECT)
            p1.append(pass_at_k(n, c, 1))
            pn.append(pass_at_k(n, c, n))
            answers.append(len(set(ro.answer_text[sl])))
            cots.append(len(set(ro.cot_text[sl])))
        m = len(recs)
        out[name] = {"pass1": sum(p1) / m, f"pass@{n}": sum(pn) / m, "distinct_answers": sum(answers) / m,
                     "distinct_cots": sum(cots) / m}
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot diagnose", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--modes", nargs="+", default=["hard", "soft", "fuzzy"])
    ap.add_argument("--gamma", type=float, default=0.33)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-cot-tokens", type=int, default=64)
    ap.add_argument("--max-answer-tokens", type=int, default=8)
    ap.add_argument("--template", default="paper")
    ap.add_argument("--reward", default="softcot.rewards:math_reward")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--diversity", type=int, default=0, metavar="N",
                    help="also measure the sources of diversity with N samples per prompt (0 = skip)")
    ap.add_argument("--diversity-prompts", type=int, default=64)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tok = load_model(ModelConfig(name_or_path=args.model), device="cpu", dtype=torch.float32)
    records = load_records(args.data)
    rcfg = RolloutConfig(max_cot_tokens=args.max_cot_tokens, max_answer_tokens=args.max_answer_tokens)
    reward_fn = load_reward(args.reward)
    result = {"config": vars(args), "modes": {}}
    for kind in args.modes:
        mode = CoTMode(kind, gamma=args.gamma)
        r = gradient_estimates(model, tok, records, mode, rcfg, args.template, args.prompts, args.group,
                               args.batches, args.seed, reward_fn)
        result["modes"][kind] = r
        print(f"{kind:6s} snr {r['total']['snr']:.4f} (null {r['null']['snr']:.4f}; unbiased "
              f"{r['total']['snr_unbiased']:.4f}, null {r['null']['snr_unbiased']:.4f})  "
              f"cot {r['cot']['snr']:.4f} |g| {r['cot']['grad_norm']:.3g}  "
              f"answer {r['answer']['snr']:.4f} |g| {r['answer']['grad_norm']:.3g}  reward {r['reward_mean']:.1f}")
        if args.diversity:
            r["diversity"] = diversity_sources(model, tok, records, kind, rcfg, args.template, args.diversity,
                                               args.diversity_prompts, args.seed, reward_fn, args.gamma)
            for name, d in r["diversity"].items():
                print(f"       {name:16s} " + "  ".join(f"{k} {v:.3f}" for k, v in d.items()))
    write_json(args.out, result)
    return 0
