"""Counter-based random numbers: every draw of a rollout is a pure function of its keys.

A rollout row carries one 32-bit key derived from (seed, step, prompt index, sample index); a draw of that row
at CoT or answer position t is hashed from (row key, stream, t, lane). So the tokens and noise of a rollout do
not depend on how the work is split: 1 or N processes, any `rollout_batch` or `micro_batch`, compaction on or
off, and a resume at any step draw the same numbers, and no generator state needs saving. (Float rounding
of a forward pass over a different batch can still differ in the last bit; such a difference changes a draw
only where a sampled token sits on a boundary of the inverse CDF.)

The hash is Chris Wellons' `lowbias32` (a 32-bit integer finaliser with near-ideal avalanche), computed on
int64 tensors with the values masked to 32 bits, so it runs vectorised on any device and equals the plain
Python reference `hash32` below. Uniforms are (h + 0.5) / 2^32 in float64; normals come from Box-Muller;
Gumbel(0, 1) variates are -log(-log u); tokens come from the inverse CDF of the sampling distribution (one
uniform per row, step and draw).
"""
from __future__ import annotations

import functools
import hashlib
import math

import torch

VERSION = "lowbias32-v1"     # recorded in evaluation fingerprints: shards drawn by another scheme are not reused
MASK = 0xFFFFFFFF
STREAM_COT = 1          # hard CoT tokens
STREAM_NOISE = 2        # the Gaussian noise of soft/fuzzy CoT inputs
STREAM_ANSWER = 3       # answer tokens
STREAM_MULTIPLEX = 4    # multiplex draws 2..K of a step (draw 1 is STREAM_COT's, so K = 1 is hard mode)
STREAM_GUMBEL = 5       # the Gumbel noise of gumbel CoT inputs, one lane per top-k rank


def hash32(x: int) -> int:
    """lowbias32 of a Python int (the reference the tensor version is tested against)."""
    x &= MASK
    x ^= x >> 16
    x = (x * 0x7FEB352D) & MASK
    x ^= x >> 15
    x = (x * 0x846CA68B) & MASK
    x ^= x >> 16
    return x


def _hash(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 elementwise on an int64 tensor of values in [0, 2^32). A product may exceed 2^63 and wrap;
    its low 32 bits, all that is kept, are exact either way."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & MASK
    return x ^ (x >> 16)


def combine(key, value, hashed: bool = False):
    """Hash `value` into `key` (ints or int64 tensors, broadcast): hash32(key ^ hash32(value)).
    hashed: `value` already holds hash32 of the values (a tensor)."""
    if isinstance(key, int) and isinstance(value, int):
        return hash32(key ^ hash32(value))
    key = torch.as_tensor(key, dtype=torch.int64)
    if isinstance(value, int):          # a stream id or a position: hashed in Python, the same number, fewer ops
        return _hash(key ^ hash32(value))
    value = torch.as_tensor(value, dtype=torch.int64, device=key.device)
    return _hash(key ^ (value if hashed else _hash(value & MASK)))


def name_key(name: str) -> int:
    """A stable 32-bit key for a name (e.g. an inference setting)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")


def row_keys(seed: int, step: int, prompt: torch.Tensor | list[int], sample: torch.Tensor | list[int],
             device=None) -> torch.Tensor:
    """(B,) int64 keys of rollout rows from (seed, step) and each row's prompt and sample index."""
    base = combine(combine(hash32(seed & MASK), step & MASK), 0)
    prompt = torch.as_tensor(prompt, dtype=torch.int64, device=device)
    sample = torch.as_tensor(sample, dtype=torch.int64, device=device)
    return combine(combine(torch.full_like(prompt, base), prompt), sample)


def uniform(keys: "torch.Tensor | Draws", stream: int, t: int, lanes: int | None = None) -> torch.Tensor:
    """Uniforms in (0, 1), float64: (B,) for one lane, (B, lanes) for several (e.g. one per noise dimension)."""
    if isinstance(keys, Draws):
        return keys.uniform(stream, t, lanes)
    k = combine(combine(keys, stream), t)
    if lanes is not None:        # combine(k, lane) for every lane, with the lanes' hashes computed once
        k = _hash(k[:, None] ^ _lane_hashes(lanes, keys.device)[None, :])
    return (k.double() + 0.5) / 4294967296.0


@functools.lru_cache(maxsize=64)
def _lane_hashes(lanes: int, device: torch.device) -> torch.Tensor:
    """hash32(j) for j < lanes, as an int64 tensor on `device` (constant: kept between steps)."""
    return _hash(torch.arange(lanes, dtype=torch.int64, device=device))


def normal(keys: torch.Tensor, stream: int, t: int, dim: int, dtype=torch.float32) -> torch.Tensor:
    """(B, dim) standard normals by Box-Muller from 2 * ceil(dim / 2) uniforms per row."""
    if isinstance(keys, Draws):
        return keys.normal(stream, t, dim, dtype)
    half = (dim + 1) // 2
    u = uniform(keys, stream, t, 2 * half)
    r = torch.sqrt(-2.0 * torch.log(u[:, :half]))
    theta = 2.0 * math.pi * u[:, half:]
    return torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=1)[:, :dim].to(dtype)


class UniformBlocks:
    """The uniforms `uniform(keys, stream, t, lanes)` of consecutive steps t, computed `block` steps at a time: one
    set of tensor ops per block instead of per step (a rollout of a small model is dispatch-bound), the same
    numbers bit for bit (integer hashes, then elementwise float64 arithmetic)."""

    def __init__(self, keys: torch.Tensor, stream: int, lanes: int | None = None, block: int = 16):
        self.keys, self.stream, self.lanes, self.block = keys, stream, lanes, block
        self._start, self._values = None, None            # float64 (block, B[, ...])

    def _transform(self, u: torch.Tensor) -> torch.Tensor:
        return u

    def _at(self, t: int) -> torch.Tensor:
        start = t - t % self.block
        if start != self._start:
            steps = torch.tensor([hash32(s) for s in range(start, start + self.block)], dtype=torch.int64,
                                 device=self.keys.device)
            k = combine(combine(self.keys, self.stream)[None, :], steps[:, None], hashed=True)   # (block, B)
            if self.lanes is not None:
                k = _hash(k[:, :, None] ^ _lane_hashes(self.lanes, self.keys.device)[None, None, :])
            self._values = self._transform((k.double() + 0.5) / 4294967296.0)
            self._start = start
        return self._values[t - start]

    def __call__(self, t: int) -> torch.Tensor:
        """(B,) or (B, lanes) float64 uniforms of step t."""
        return self._at(t)


class NormalBlocks(UniformBlocks):
    """`normal(keys, stream, t, dim, dtype)` of consecutive steps, a block of steps at a time, bit for bit."""

    def __init__(self, keys: torch.Tensor, stream: int, dim: int, block: int = 16):
        super().__init__(keys, stream, 2 * ((dim + 1) // 2), block)
        self.dim = dim

    def _transform(self, u: torch.Tensor) -> torch.Tensor:
        half = u.shape[-1] // 2
        r = torch.sqrt(-2.0 * torch.log(u[..., :half]))
        theta = 2.0 * math.pi * u[..., half:]
        return torch.cat([r * torch.cos(theta), r * torch.sin(theta)], dim=-1)[..., :self.dim]

    def __call__(self, t: int, dtype=torch.float32) -> torch.Tensor:
        """(B, dim) normals of step t."""
        return self._at(t).to(dtype)


class Draws:
    """The draws of one rollout's rows: `uniform`, `normal`, `gumbel` and `categorical` of this module accept a
    Draws in place of the keys and then read their numbers from blocks of steps (UniformBlocks, NormalBlocks),
    the same numbers bit for bit. A rollout makes one per call; every step of a stream then costs one slice."""

    def __init__(self, keys: torch.Tensor, block: int = 16):
        self.keys, self.block = keys, block
        self._blocks: dict = {}

    def uniform(self, stream: int, t: int, lanes: int | None = None) -> torch.Tensor:
        key = ("uniform", stream, lanes)
        if key not in self._blocks:
            self._blocks[key] = UniformBlocks(self.keys, stream, lanes, self.block)
        return self._blocks[key](t)

    def normal(self, stream: int, t: int, dim: int, dtype=torch.float32) -> torch.Tensor:
        key = ("normal", stream, dim)
        if key not in self._blocks:
            self._blocks[key] = NormalBlocks(self.keys, stream, dim, self.block)
        return self._blocks[key](t, dtype)


def gumbel(keys: torch.Tensor, stream: int, t: int, lanes: int, dtype=torch.float32) -> torch.Tensor:
    """(B, lanes) i.i.d. Gumbel(0, 1) variates -log(-log u), computed in float64."""
    return (-torch.log(-torch.log(uniform(keys, stream, t, lanes)))).to(dtype)


def inverse_cdf(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """(B, n) token ids at the (B, n) uniforms `u` of the rows of (B, V) probabilities (need not be normalised;
    a zero-probability token is never drawn): the inverse CDF, vectorised over rows and draws."""
    cdf = probs.double().cumsum(-1)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=False)
    return idx.clamp(max=probs.shape[-1] - 1)


def categorical(probs: torch.Tensor, keys: torch.Tensor, stream: int, t: int) -> torch.Tensor:
    """(B,) token ids drawn from the rows of (B, V) probabilities by the inverse CDF of one uniform per row.
    The rows need not be normalised; a zero-probability token is never drawn."""
    return inverse_cdf(probs, uniform(keys, stream, t)[:, None])[:, 0]
