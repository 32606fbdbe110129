"""Counter-based randomness against independent oracles: the Python reference hash, uniformity, the normal and
Gumbel distributions, the categorical frequencies and lanes, and independence from how rows are batched."""
from __future__ import annotations

import math
import random

import pytest
import torch

from softcot import rng
from softcot.rng import (STREAM_COT, STREAM_GUMBEL, STREAM_MULTIPLEX, STREAM_NOISE, categorical, combine, gumbel,
                         hash32, inverse_cdf, normal, row_keys, uniform)


def test_tensor_hash_equals_python_reference():
    rng = random.Random(0)
    xs = [0, 1, 0xFFFFFFFF, 0x80000000, 0x7FFFFFFF] + [rng.getrandbits(32) for _ in range(2000)]
    ys = [rng.getrandbits(32) for _ in xs]
    got = combine(torch.tensor(xs), torch.tensor(ys)).tolist()
    assert got == [combine(x, y) for x, y in zip(xs, ys)]
    assert hash32(0) == 0 and len({hash32(i) for i in range(10000)}) == 10000   # a bijection on 32 bits


def test_uniforms_and_their_lanes_equal_the_python_reference():
    """uniform(keys, stream, t[, lanes]) = (hash32(hash32(hash32(key ^ h(stream)) ^ h(t)) [^ h(lane)]) + 0.5) / 2^32
    with h = hash32, row by row and lane by lane (the fast paths hash ints and lanes once)."""
    keys = row_keys(3, 1, torch.arange(40), torch.arange(40) % 4)
    one, many = uniform(keys, 7, 11), uniform(keys, 7, 11, 9)
    for b in range(40):
        k = hash32(hash32(int(keys[b]) ^ hash32(7)) ^ hash32(11))
        assert one[b].item() == (k + 0.5) / 2 ** 32
        assert many[b].tolist() == [(hash32(k ^ hash32(j)) + 0.5) / 2 ** 32 for j in range(9)]


def test_keys_depend_on_every_component():
    base = row_keys(0, 0, [0], [0]).item()
    for args in ((1, 0, [0], [0]), (0, 1, [0], [0]), (0, 0, [1], [0]), (0, 0, [0], [1])):
        assert row_keys(*args).item() != base


def test_uniforms_are_uniform_and_rows_independent_of_the_batch():
    keys = row_keys(3, 7, torch.arange(4000) // 8, torch.arange(4000) % 8)
    u = uniform(keys, STREAM_COT, 5)
    assert u.dtype == torch.float64 and 0 < float(u.min()) and float(u.max()) < 1
    counts = torch.histc(u.float(), bins=10, min=0, max=1)
    chi2 = float(((counts - 400) ** 2 / 400).sum())
    assert chi2 < 27.9                                  # chi-square, 9 dof, p = 0.001
    # the same row drawn alone, or inside another batch, gets the same number
    assert torch.equal(uniform(keys[123:124], STREAM_COT, 5), u[123:124])
    assert torch.equal(uniform(keys.flip(0), STREAM_COT, 5), u.flip(0))
    assert not torch.equal(uniform(keys, STREAM_COT, 6), u)


def test_normals_have_standard_moments_against_torch_distributions():
    keys = row_keys(0, 0, torch.arange(2000), torch.zeros(2000, dtype=torch.long))
    z32 = normal(keys, STREAM_NOISE, 3, 97)
    z = normal(keys, STREAM_NOISE, 3, 97, dtype=torch.float64)
    assert z.shape == (2000, 97) and z32.dtype == torch.float32 and torch.equal(z32, z.float())
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    # Kolmogorov-Smirnov distance to N(0, 1), with torch.distributions as the oracle
    x = z.flatten().sort().values
    cdf = torch.distributions.Normal(0.0, 1.0).cdf(x)
    n = x.numel()
    ks = float(torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max())
    assert ks < 1.63 / math.sqrt(n)                     # p = 0.01
    assert torch.equal(normal(keys[:5], STREAM_NOISE, 3, 97), z32[:5])


def test_categorical_frequencies_match_the_probabilities():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    n = 20000
    keys = row_keys(1, 0, torch.arange(n), torch.zeros(n, dtype=torch.long))
    draws = categorical(probs.expand(n, 4), keys, STREAM_COT, 0)
    freq = torch.bincount(draws, minlength=4).double() / n
    assert freq[1] == 0, "a zero-probability token was drawn"
    torch.testing.assert_close(freq, probs.double(), atol=0.015, rtol=0)
    # unnormalised rows give the same draws
    assert torch.equal(categorical(3 * probs.expand(n, 4), keys, STREAM_COT, 0), draws)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_categorical_matches_torch_distributions_log_probs(temperature):
    torch.manual_seed(0)
    logits = torch.randn(6)
    p = torch.softmax(logits / temperature, -1)
    n = 30000
    keys = row_keys(2, 0, torch.arange(n), torch.zeros(n, dtype=torch.long))
    draws = categorical(p.expand(n, 6), keys, STREAM_COT, 1)
    freq = torch.bincount(draws, minlength=6).double() / n
    ref = torch.distributions.Categorical(logits=logits / temperature).probs.double()
    torch.testing.assert_close(freq, ref, atol=0.015, rtol=0)


def test_gumbels_follow_the_gumbel_distribution_and_the_rows_keys():
    keys = row_keys(4, 1, torch.arange(3000), torch.zeros(3000, dtype=torch.long))
    g = gumbel(keys, STREAM_GUMBEL, 2, 7, dtype=torch.float64)
    assert g.shape == (3000, 7) and torch.equal(gumbel(keys[10:12], STREAM_GUMBEL, 2, 7, dtype=torch.float64), g[10:12])
    x = g.flatten().sort().values
    cdf = torch.distributions.Gumbel(0.0, 1.0).cdf(x)
    n = x.numel()
    ks = float(torch.maximum(torch.arange(1, n + 1) / n - cdf, cdf - torch.arange(n) / n).max())
    assert ks < 1.63 / math.sqrt(n)                     # p = 0.01


def test_inverse_cdf_lanes_reuse_the_single_draw_of_categorical():
    """Lane j of inverse_cdf at the uniforms of categorical's stream gives categorical's token (multiplex draw 1
    is hard mode's draw)."""
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(500, 11), -1)
    keys = row_keys(3, 0, torch.arange(500), torch.zeros(500, dtype=torch.long))
    u = torch.cat([uniform(keys, STREAM_COT, 4)[:, None], uniform(keys, STREAM_MULTIPLEX, 4, 2)], 1)
    ids = inverse_cdf(probs, u)
    assert ids.shape == (500, 3) and torch.equal(ids[:, 0], categorical(probs, keys, STREAM_COT, 4))
    assert not torch.equal(ids[:, 1], ids[:, 0]) and not torch.equal(ids[:, 1], ids[:, 2])


@pytest.mark.parametrize("rows,dim", [(32, 96), (7, 5), (3, 576), (1, 1)])
def test_blocks_of_steps_are_the_per_step_draws_bit_for_bit(rows, dim):
    keys = rng.row_keys(3, 5, torch.arange(rows), torch.arange(rows) % 4)
    blocks = rng.NormalBlocks(keys, rng.STREAM_NOISE, dim)
    one, lanes = rng.UniformBlocks(keys, STREAM_COT), rng.UniformBlocks(keys, STREAM_GUMBEL, lanes=dim)
    draws = rng.Draws(keys)
    for t in (0, 1, 15, 16, 17, 40, 3):             # within a block, across blocks, and back
        assert torch.equal(one(t), uniform(keys, STREAM_COT, t))
        assert torch.equal(lanes(t), uniform(keys, STREAM_GUMBEL, t, dim))
        for dtype in (torch.float32, torch.bfloat16):
            assert torch.equal(blocks(t, dtype), rng.normal(keys, rng.STREAM_NOISE, t, dim, dtype=dtype)), (t, dtype)
            # a rollout's Draws in place of the keys: the functional API reads the blocks
            assert torch.equal(normal(draws, STREAM_NOISE, t, dim, dtype), normal(keys, STREAM_NOISE, t, dim, dtype))
        assert torch.equal(gumbel(draws, STREAM_GUMBEL, t, dim), gumbel(keys, STREAM_GUMBEL, t, dim))
        probs = torch.rand(rows, 11)
        assert torch.equal(categorical(probs, draws, STREAM_COT, t), categorical(probs, keys, STREAM_COT, t))
