"""The ways to feed a chain of thought, and the mixers of embedding rows.

    hard       next input E[x],            x ~ softmax(z / tau)          training tau = 1.0
    soft       next input p E + sigma eps, p = softmax(z / tau)          training tau = 0.5
    fuzzy      as soft with tau = 1e-4 (p almost one-hot)
Options beyond the paper (docs/estimators.md):
    multiplex  next input mean_k E[x_k],   x_1..x_K i.i.d. ~ softmax(z / tau)           softcot.multiplex
    gumbel     next input sum_j y_j E[i_j] over the top-k ids i of p, y ~ Concrete       softcot.gumbel

sigma = gamma * rms(E), rms(E) the root-mean-square of the entries of the input-embedding matrix E (V, d).
So ||sigma eps|| ~ gamma * sqrt(d) * rms(E) ~ gamma times a typical embedding's norm: with the paper's
gamma = 0.33 the noise is "comparable but a bit smaller than the embeddings", the only reading of the
paper's wording that honours that clause.
Greedy variants (inference): hard greedy = argmax; soft/fuzzy greedy = the same mixture with sigma = 0.
The mode itself (`CoTMode`) is a config dataclass in softcot.schema.
"""
from __future__ import annotations

import torch

from softcot.schema import DEFAULT_GAMMA, DEFAULT_TAU, SETTINGS, CoTMode, Kind  # noqa: F401  (re-exported)


def embedding_rms(E: torch.Tensor) -> float:
    """Root-mean-square of the entries of E, computed in fp32."""
    return float(E.detach().float().pow(2).mean().sqrt())


def noise_sigma(mode: CoTMode, E: torch.Tensor) -> float:
    """sigma = gamma * rms(E) for sampled soft/fuzzy CoTs, 0 for greedy ones and the other kinds."""
    if not mode.gaussian or mode.greedy:
        return 0.0
    return mode.gamma * embedding_rms(E)


def mix(logits: torch.Tensor, E: torch.Tensor, tau: float) -> torch.Tensor:
    """The mean soft input p E with p = softmax(logits / tau): (N, V) x (V, d) -> (N, d), fp32.

    One V x d product per step, about the cost of the output head; never a dense V x V or a per-row loop.
    """
    # fp32 even under bf16 autocast: the Gaussian density compares h with this mean at the scale sigma.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        p = torch.softmax(logits.float() / tau, dim=-1)
        return p @ E.float()


def mix_rows(E: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum_k weights[..., k] E[ids[..., k]]: (..., K) ids and fp32 weights -> (..., d) fp32.

    Gathers only the K rows (no V x d copy, no matmul, so autocast leaves it in fp32); the rollout and the
    teacher-forced pass both build multiplex and gumbel inputs with it, so the two agree. A weight of exactly
    1 on one row gives that row exactly (K = 1 multiplex is hard mode)."""
    return (weights.unsqueeze(-1) * E[ids].float()).sum(-2)
