"""Multiplex CoT steps (after Multiplex Thinking, arXiv 2601.08808): K tokens drawn, their mean embedding fed.

At each CoT step, with p = softmax(z / tau) the step's sampling distribution:

    x_1, ..., x_K  i.i.d. ~ p                  x_1 from rng.STREAM_COT (hard mode's draw), x_2..x_K STREAM_MULTIPLEX
    input          (1 / K) sum_k E[x_k]        a token drawn twice counts twice
    log q          sum_k log p(x_k)            exact and discrete: no Gaussian term

So K = 1 is hard mode: the same token and log-probability for the same row key.

Entropy gate (`multiplex_gate`, off by default): a step mixes only where H(p) > gate (nats, of the sampling
distribution p, as the reference implementation's `entropy_mask_threshold`); a gated step feeds E[x_1] and
scores log p(x_1) alone. Its law is then one categorical draw, so the density stays exact. The gate is a
function of the logits; the rollout records it per step and the teacher-forced pass scores with the record,
so float rounding near the threshold cannot move a step between the two densities.

Greedy (inference): every draw is argmax p, so the input is E[argmax p] as in hard greedy.
"""
from __future__ import annotations

import torch

from softcot import rng
from softcot.schema import CoTMode


def weights(K: int, gate: torch.Tensor | None, shape: tuple, device) -> torch.Tensor:
    """(*shape, K) fp32 weights of the K draws: 1 / K each at mixed steps, (1, 0, ..., 0) at gated ones.
    `gate`: bool of `shape`, True where the step mixes; None: every step mixes."""
    mixed = torch.full((*shape, K), 1.0 / K, device=device)
    if gate is None:
        return mixed
    first = torch.zeros_like(mixed)
    first[..., 0] = 1.0
    return torch.where(gate.unsqueeze(-1), mixed, first)


def draw(logits: torch.Tensor, mode: CoTMode, keys: torch.Tensor | rng.Draws, t: int
         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One step for (B, V) logits: (B, K) token ids, (B, K) fp32 weights, and the (B,) gate (None when the
    gate is off). Draw k of row b is a function of keys[b], t and k alone (softcot.rng)."""
    K = mode.multiplex_k
    if mode.greedy:
        ids = logits.argmax(-1, keepdim=True).expand(-1, K)
        return ids, weights(K, None, ids.shape[:1], logits.device), None
    probs = torch.softmax(logits / mode.temperature, dim=-1)        # as hard mode's draw, bit for bit
    u = rng.uniform(keys, rng.STREAM_COT, t)[:, None]
    if K > 1:
        u = torch.cat([u, rng.uniform(keys, rng.STREAM_MULTIPLEX, t, K - 1)], dim=1)
    ids = rng.inverse_cdf(probs, u)                                  # (B, K), one vectorised search
    gate = None
    if mode.multiplex_gate is not None:
        gate = torch.special.entr(probs).sum(-1) > mode.multiplex_gate
    return ids, weights(K, gate, ids.shape[:1], logits.device), gate


def log_prob(logits: torch.Tensor, ids: torch.Tensor, gate: torch.Tensor | None, tau: float) -> torch.Tensor:
    """log q of N steps: (N, V) logits, (N, K) draws, (N,) gate or None -> (N,)
    sum_k log softmax(z / tau)[x_k] at mixed steps, log softmax(z / tau)[x_1] at gated ones."""
    logp = torch.log_softmax(logits / tau, -1).gather(-1, ids)
    total = logp.sum(-1)
    return total if gate is None else torch.where(gate, total, logp[:, 0])
