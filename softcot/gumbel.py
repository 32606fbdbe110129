"""Gumbel-softmax CoT steps (after SofT-GRPO, arXiv 2511.06411): a Concrete draw on the top-k simplex, fed as y E.

At each CoT step, with p = softmax(z / tau) the step's distribution and lambda the Gumbel-softmax temperature:

    i_1, ..., i_k   the k ids of highest p, by decreasing p (i_1 = argmax p, the greedy shadow)
    pi_j            p_{i_j} / sum_l p_{i_l}                    p renormalised over the top k
    y               softmax((log pi + g) / lambda)             g_j i.i.d. Gumbel(0, 1), rng.STREAM_GUMBEL lane j
    input           sum_j y_j E[i_j]
    log q(y)        log (k-1)! + (k-1) log lambda + sum_j (log pi_j - (lambda + 1) log y_j)
                    - k logsumexp_j (log pi_j - lambda log y_j)

log q is the Concrete (Gumbel-softmax) density of y (Maddison et al. 2017; Jang et al. 2017) with respect to
Lebesgue measure on k - 1 coordinates of the simplex; torch.distributions.RelaxedOneHotCategorical(lambda,
logits=log pi).log_prob(y) is the same function (the tests' oracle). The rollout keeps log y as a
log_softmax and stores it: with lambda = 0.1 the small y_j underflow fp32, their logarithms do not. The
teacher-forced pass recomputes pi from its logits (only the k stored ids' logits enter) and scores the stored
log y, so the gradient reaches the model through pi.

Approximation (as in SofT-GRPO): the support, the top k of p, is chosen by the logits and taken as given.
The density is exact for y on that support; how the choice of support moves with the parameters is not
part of the score function.

Greedy (inference): g = 0, y = softmax(log pi / lambda).
"""
from __future__ import annotations

import math

import torch

from softcot import rng
from softcot.schema import CoTMode


def log_pi(top_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """(..., k) logits of the support -> log pi, the log-probabilities renormalised over those k (fp32)."""
    return torch.log_softmax(top_logits.to(torch.promote_types(top_logits.dtype, torch.float32)) / tau, -1)


def draw(logits: torch.Tensor, mode: CoTMode, keys: torch.Tensor | rng.Draws, t: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One step for (B, V) logits: the (B, k) top-k ids (by decreasing p) and the (B, k) fp32 log y.
    The noise of row b is a function of keys[b] and t alone (softcot.rng)."""
    k = mode.gumbel_top_k
    if k > logits.shape[-1]:
        raise ValueError(f"mode.gumbel_top_k: {k} exceeds the vocabulary size {logits.shape[-1]}; "
                         f"choose gumbel_top_k <= {logits.shape[-1]}")
    top, ids = torch.topk(logits, k, dim=-1)                 # the order of p = softmax(z / tau), tau > 0
    x = log_pi(top, mode.temperature)
    if not mode.greedy:
        x = x + rng.gumbel(keys, rng.STREAM_GUMBEL, t, k)
    return ids, torch.log_softmax(x / mode.gumbel_lambda, -1)


def log_density(log_pi: torch.Tensor, log_y: torch.Tensor, lam: float) -> torch.Tensor:
    """The Concrete log-density of y (given as log y) with class log-probabilities log pi at temperature lam:
    (..., k), (..., k) -> (...)."""
    k = log_y.shape[-1]
    score = log_pi - lam * log_y
    return (math.lgamma(k) + (k - 1) * math.log(lam) + score.sum(-1) - k * score.logsumexp(-1)
            - log_y.sum(-1))
