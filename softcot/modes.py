"""The three ways to feed a chain of thought, and the soft-token mixer (method.md §1).

    hard   next input E[x],            x ~ softmax(z / tau)          training tau = 1.0
    soft   next input p E + sigma eps, p = softmax(z / tau)          training tau = 0.5
    fuzzy  as soft with tau = 1e-4 (p almost one-hot)

sigma = gamma * rms(E), rms(E) the root-mean-square of the entries of the input-embedding matrix E (V, d).
So ||sigma eps|| ~ gamma * sqrt(d) * rms(E) ~ gamma times a typical embedding's norm: with the paper's
gamma = 0.33 the noise is "comparable but a bit smaller than the embeddings", the only reading of the
paper's wording that honours that clause.
Greedy variants (inference): hard greedy = argmax; soft/fuzzy greedy = the same mixture with sigma = 0.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch

from softcot.config import require

Kind = Literal["hard", "soft", "fuzzy"]
DEFAULT_TAU = {"hard": 1.0, "soft": 0.5, "fuzzy": 1e-4}
DEFAULT_GAMMA = 0.33
SETTINGS = ("hard_greedy", "hard_sample", "fuzzy_greedy", "fuzzy_sample", "soft_greedy", "soft_sample")


@dataclass(frozen=True)
class CoTMode:
    """How CoT inputs are produced. `tau` None means the kind's default; `greedy` switches off sampling."""
    kind: Kind = "hard"
    tau: float | None = None
    gamma: float = DEFAULT_GAMMA
    greedy: bool = False

    def validate(self, prefix: str = "") -> None:
        require(self.kind in DEFAULT_TAU, prefix + "kind", f"got {self.kind!r}; allowed: hard | soft | fuzzy")
        require(self.tau is None or self.tau > 0, prefix + "tau",
                f"got {self.tau}; the CoT temperature must be > 0 (use greedy: true for argmax)")
        require(self.gamma >= 0, prefix + "gamma", f"got {self.gamma}; the noise scale must be >= 0")

    @property
    def temperature(self) -> float:
        return DEFAULT_TAU[self.kind] if self.tau is None else self.tau

    @property
    def continuous(self) -> bool:
        return self.kind != "hard"

    @classmethod
    def from_setting(cls, setting: str, gamma: float = DEFAULT_GAMMA, tau: float | None = None) -> "CoTMode":
        """'soft_sample' -> CoTMode('soft', greedy=False), one of the paper's six inference settings."""
        kind, _, how = setting.partition("_")
        if setting not in SETTINGS:
            raise ValueError(f"unknown inference setting {setting!r}; allowed: {', '.join(SETTINGS)}")
        return cls(kind=kind, tau=tau, gamma=gamma, greedy=(how == "greedy"))

    def replace(self, **kw) -> "CoTMode":
        return dataclasses.replace(self, **kw)


def embedding_rms(E: torch.Tensor) -> float:
    """Root-mean-square of the entries of E, computed in fp32."""
    return float(E.detach().float().pow(2).mean().sqrt())


def noise_sigma(mode: CoTMode, E: torch.Tensor) -> float:
    """sigma = gamma * rms(E) for sampled soft/fuzzy CoTs, 0 for hard or greedy ones."""
    if not mode.continuous or mode.greedy:
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
