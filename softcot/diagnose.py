"""Estimator diagnostics: gradient signal-to-noise per CoT mode and per loss term, and where the sampled
diversity comes from.

    softcot diagnose --model results/toy/base --data results/toy/data/train.jsonl --modes hard soft fuzzy \
        --batches 20 --prompts 8 --group 8 --template toy --out results/toy/study/snr.json

Every flag is also a DiagnoseConfig key (`--config FILE`, `key=value` overrides).

For each mode, `--batches` independent batches (B prompts x G rollouts, RLOO advantages, the paper's loss)
give gradient estimates g_1..g_n of the same expected gradient, at fixed parameters. Reported:
  snr        |mean g|^2 / mean |g|^2      (1 = noiseless; about 1/n for pure noise, so compare with snr_null)
  snr_unbiased  (|mean g|^2 - tr(Cov)/n) / mean |g|^2, an unbiased numerator: about 0 for pure noise, so it
             compares across different n
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

With `--positions 1 2 4 8 16 32` it also splits the CoT term's gradient over CoT position buckets (the marker
step apart) against the answer term (softcot.positions); `--no-snr` skips the SNR estimates. The result also
names the model's size (parameters, hidden size, layers).
"""
from __future__ import annotations

import argparse
import dataclasses

import torch

from softcot.config import load_config
from softcot.data import load_records
from softcot.gradstats import grad_stats, sample_batch
from softcot.io import write_json
from softcot.loss import Scorer, microbatches
from softcot.modeling import ModelConfig, load_model, model_fields
from softcot.passk import pass_at_k
from softcot.prompt import build_prompt
from softcot.rewards import CORRECT, call_reward, load_reward
from softcot.rollout import rollout
from softcot.schema import DEFAULT_GAMMA, CoTMode, DiagnoseConfig, RolloutConfig


def term_gradients(model, scorer, ro, adv: torch.Tensor, null: torch.Tensor, micro_batch: int | None = None) -> dict:
    """Flat gradients of the loss's CoT term and answer term under the advantages `adv`, and of the whole loss
    under the `null` advantages, -(1/n) sum_g A_g l_g as in training: one teacher-forced pass per micro-batch
    serves all three (the scoring pass is the dearest part after the backward passes)."""
    n = len(adv)
    params = [p for p in model.parameters()]
    out = {k: torch.zeros(sum(p.numel() for p in params)) for k in ("cot", "answer", "null")}
    for sub, a in microbatches([ro], torch.stack([adv, null], 1), micro_batch or n):
        t = scorer(sub)
        losses = {"cot": -(a[:, 0] * t["cot"]).sum() / n, "answer": -(a[:, 0] * t["answer"]).sum() / n,
                  "null": -(a[:, 1] * (t["cot"] + t["answer"])).sum() / n}
        for i, (key, loss) in enumerate(losses.items()):
            if not loss.requires_grad:                      # nothing scored in this micro-batch
                continue
            gs = torch.autograd.grad(loss, params, retain_graph=i < len(losses) - 1, allow_unused=True)
            out[key] += torch.cat([(g if g is not None else torch.zeros_like(p)).flatten().float()
                                   for g, p in zip(gs, params)])
    return out


def gradient_estimates(model, tok, records, mode: CoTMode, rcfg: RolloutConfig, template: str, prompts: int,
                       group: int, batches: int, seed: int, reward_fn, micro_batch: int | None = None) -> dict:
    g = torch.Generator().manual_seed(seed)
    pick = torch.Generator().manual_seed(seed + 1)
    scorer = Scorer(model)
    out = {k: [] for k in ("total", "cot", "answer", "null")}
    rewards_seen = []
    for _ in range(batches):
        ro, rewards, adv = sample_batch(model, tok, records, mode, rcfg, template, prompts, group, pick, g, reward_fn)
        rewards_seen += [r for r in rewards if r is not None]
        null = adv[torch.randperm(len(adv), generator=pick)]
        grads = term_gradients(model, scorer, ro, adv, null, micro_batch)
        for key in ("cot", "answer", "null"):
            out[key].append(grads[key])
        out["total"].append(grads["cot"] + grads["answer"])        # the loss is the sum of its two terms
    model.zero_grad(set_to_none=True)
    res = {key: grad_stats(gs) for key, gs in out.items()}
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
                      seed: int, reward_fn, gamma: float = DEFAULT_GAMMA) -> dict:
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
        rewards = call_reward(reward_fn, texts, ro.completions, rows, completion_ids=ro.completion_ids)
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


def model_size(model) -> dict:
    """Parameters and shape of a model, for the scale comparison."""
    c = model.config
    return {"n_params": sum(p.numel() for p in model.parameters()),
            **{k: getattr(c, k, None) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                "num_attention_heads")}}


def diagnose(cfg: DiagnoseConfig) -> dict:
    """Gradient statistics (and, with `diversity`, the diversity sources) of every mode in `cfg.modes`."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, tok = load_model(ModelConfig(**model_fields(cfg.model, None)), device="cpu", dtype=torch.float32)
    records = load_records(cfg.data)
    rcfg = RolloutConfig(max_cot_tokens=cfg.max_cot_tokens, max_answer_tokens=cfg.max_answer_tokens)
    reward_fn = load_reward(cfg.reward)
    result = {"config": dataclasses.asdict(cfg), "model_size": model_size(model), "modes": {}}
    for kind in cfg.modes:
        r = {}
        if cfg.snr:
            r = gradient_estimates(model, tok, records, CoTMode(kind, gamma=cfg.gamma), rcfg, cfg.template,
                                   cfg.prompts, cfg.group, cfg.batches, cfg.seed, reward_fn, cfg.micro_batch)
            print(f"{kind:6s} snr {r['total']['snr']:.4f} (null {r['null']['snr']:.4f}; unbiased "
                  f"{r['total']['snr_unbiased']:.4f}, null {r['null']['snr_unbiased']:.4f})  "
                  f"cot {r['cot']['snr']:.4f} |g| {r['cot']['grad_norm']:.3g}  "
                  f"answer {r['answer']['snr']:.4f} |g| {r['answer']['grad_norm']:.3g}  reward {r['reward_mean']:.1f}")
        result["modes"][kind] = r
        if cfg.positions:
            from softcot.positions import position_gradients
            p = r["positions"] = position_gradients(
                model, tok, records, CoTMode(kind, gamma=cfg.gamma), rcfg, cfg.template, cfg.prompts, cfg.group,
                cfg.batches, cfg.seed, reward_fn, cfg.positions, cfg.micro_batch)
            print(f"{kind:6s} CoT term |g| {p['cot']['grad_norm']:.3g} ({p['cot']['vs_answer']:.3g} x the answer "
                  f"term's); by CoT step: " + "  ".join(f"{k} {v['share']:+.2f}" for k, v in p["buckets"].items()))
        if cfg.diversity:
            r["diversity"] = diversity_sources(model, tok, records, kind, rcfg, cfg.template, cfg.diversity,
                                               cfg.diversity_prompts, cfg.seed, reward_fn, cfg.gamma)
            for name, d in r["diversity"].items():
                print(f"       {name:16s} " + "  ".join(f"{k} {v:.3f}" for k, v in d.items()))
    return result


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="softcot diagnose", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", help="YAML file with DiagnoseConfig keys")
    ap.add_argument("overrides", nargs="*", help="key=value overrides, e.g. batches=40 gamma=1.0")
    for key in ("model", "data", "template", "reward"):
        ap.add_argument(f"--{key}")
    ap.add_argument("--modes", nargs="+")
    ap.add_argument("--gamma", type=float)
    for key in ("batches", "prompts", "group", "max-cot-tokens", "max-answer-tokens", "seed", "threads",
                "diversity-prompts", "micro-batch"):
        ap.add_argument(f"--{key}", type=int)
    ap.add_argument("--positions", nargs="+", type=int, metavar="EDGE",
                    help="also split the CoT term's gradient over CoT steps at these edges, e.g. 1 2 4 8 16 32")
    ap.add_argument("--no-snr", dest="snr", action="store_const", const=False,
                    help="skip the SNR estimates (e.g. with --positions alone)")
    ap.add_argument("--diversity", type=int, metavar="N",
                    help="also measure the sources of diversity with N samples per prompt (0 = skip)")
    ap.add_argument("--out", required=True)
    args = ap.parse_intermixed_args(argv)
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "overrides", "out") and v is not None}
    cfg = load_config(DiagnoseConfig, args.config, args.overrides, flags=flags)
    write_json(args.out, diagnose(cfg))
    return 0
