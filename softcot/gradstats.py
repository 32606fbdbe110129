"""Gradient statistics of the RL estimator at fixed parameters: batches of rollouts with their RLOO advantages,
flat parameter gradients, and the signal-to-noise of a set of independent gradient estimates. Shared by
softcot.diagnose (per mode and loss term) and softcot.positions (per CoT position bucket).
"""
from __future__ import annotations

import torch

from softcot.loss import rloo_advantages
from softcot.prompt import build_prompt
from softcot.rewards import call_reward
from softcot.rollout import rollout


def sample_batch(model, tok, records: list[dict], mode, rcfg, template: str, prompts: int, group: int,
                 pick: torch.Generator, generator: torch.Generator, reward_fn):
    """One batch as training draws it: `prompts` records (drawn with `pick`) x `group` rollouts each, judged.
    Returns (rollout, rewards, RLOO advantages)."""
    idx = torch.randint(len(records), (prompts,), generator=pick).tolist()
    recs = [records[i] for i in idx for _ in range(group)]
    texts = [build_prompt(r["question"], template) for r in recs]
    model.eval()
    ro = rollout(model, tok, texts, mode, rcfg, generator=generator)
    rewards = call_reward(reward_fn, texts, ro.completions, recs, completion_ids=ro.completion_ids)
    return ro, rewards, rloo_advantages(rewards, group)


def flat_grad(model) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten().float()
                      for p in model.parameters()])


def grad_stats(gs: list[torch.Tensor]) -> dict:
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
