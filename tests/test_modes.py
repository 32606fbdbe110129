"""softcot.modes, softcot.multiplex, softcot.gumbel: the soft-token mixer p E, the noise scale sigma = gamma rms(E),
the greedy variants of each mode against hard greedy decoding, and the multiplex and gumbel draws and densities
against torch.distributions."""
from __future__ import annotations

import math

import pytest
import torch

from softcot import gumbel, multiplex
from softcot.modes import embedding_rms, mix, mix_rows, noise_sigma
from softcot.rng import row_keys
from softcot.rollout import rollout
from softcot.schema import DEFAULT_TAU, CoTMode, RolloutConfig
from tests.helpers import PROMPTS, make_tiny

ARCHS = ["llama", "qwen2"]


def test_mix_equals_the_softmax_weighted_sum_of_embedding_rows():
    torch.manual_seed(0)
    logits, E = torch.randn(3, 11, dtype=torch.float64), torch.randn(11, 5, dtype=torch.float64)
    for tau in (0.5, 1.0, 2.0):
        w = [[math.exp(float(z) / tau) for z in row] for row in logits]
        want = torch.tensor([[sum(wi[v] * float(E[v, j]) for v in range(11)) / sum(wi) for j in range(5)]
                             for wi in w], dtype=torch.float64)
        torch.testing.assert_close(mix(logits, E, tau).double(), want, atol=1e-5, rtol=1e-5)


def test_mix_at_the_fuzzy_temperature_is_the_argmax_embedding_row():
    torch.manual_seed(1)
    E = torch.randn(9, 4)
    logits = torch.randn(5, 9)
    top = logits.argmax(-1)
    logits[torch.arange(5), top] += 0.05          # a margin of >= 0.05 = 500 tau over the runner-up
    torch.testing.assert_close(mix(logits, E, DEFAULT_TAU["fuzzy"]), E[top])


def test_mix_computes_in_fp32_for_bf16_inputs():
    logits, E = torch.randn(2, 7).bfloat16(), torch.randn(7, 3).bfloat16()
    out = mix(logits, E, 0.5)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.softmax(logits.float() / 0.5, -1) @ E.float())


def test_embedding_rms_is_the_root_mean_square_of_the_entries():
    assert embedding_rms(torch.full((4, 6), -3.0)) == pytest.approx(3.0)
    E = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    assert embedding_rms(E) == pytest.approx(math.sqrt((1 + 4 + 4 + 16) / 4))
    assert embedding_rms(E.bfloat16()) == pytest.approx(math.sqrt(25 / 4))


@pytest.mark.parametrize("mode,factor", [
    (CoTMode("hard"), 0.0),
    (CoTMode("soft", greedy=True), 0.0),
    (CoTMode("fuzzy", greedy=True), 0.0),
    (CoTMode("soft"), 0.33),
    (CoTMode("fuzzy", gamma=1.0), 1.0),
    (CoTMode("soft", gamma=0.0), 0.0),
    (CoTMode("multiplex"), 0.0),
    (CoTMode("gumbel"), 0.0),
])
def test_noise_sigma_is_gamma_times_rms_for_sampled_continuous_modes(mode, factor):
    E = torch.tensor([[3.0, -3.0], [3.0, 3.0]])
    assert noise_sigma(mode, E) == pytest.approx(factor * 3.0)


@pytest.mark.parametrize("arch", ARCHS)
def test_fuzzy_greedy_and_cold_soft_equal_hard_greedy(arch):
    model, tok = make_tiny(arch, seed=2)
    cfg = RolloutConfig(max_cot_tokens=20, answer_temperature=0.0)
    hard = rollout(model, tok, PROMPTS, CoTMode("hard", greedy=True), cfg)
    fuzzy = rollout(model, tok, PROMPTS, CoTMode("fuzzy", greedy=True), cfg)
    soft = rollout(model, tok, PROMPTS, CoTMode("soft", tau=1e-6, greedy=True), cfg)
    assert fuzzy.sigma == 0 and soft.sigma == 0
    assert fuzzy.cot_ids == hard.cot_ids and soft.cot_ids == hard.cot_ids
    assert fuzzy.answer_ids == hard.answer_ids and soft.answer_ids == hard.answer_ids


@pytest.mark.parametrize("arch", ARCHS)
def test_multiplex_and_gumbel_greedy_equal_hard_greedy(arch):
    """Greedy multiplex feeds K copies of argmax p; greedy gumbel at a tiny lambda puts y on argmax p."""
    model, tok = make_tiny(arch, seed=2)
    cfg = RolloutConfig(max_cot_tokens=20, answer_temperature=0.0)
    hard = rollout(model, tok, PROMPTS, CoTMode("hard", greedy=True), cfg)
    mux = rollout(model, tok, PROMPTS, CoTMode("multiplex", greedy=True), cfg)
    gum = rollout(model, tok, PROMPTS, CoTMode("gumbel", gumbel_lambda=1e-4, greedy=True), cfg)
    assert mux.cot_ids == hard.cot_ids and gum.cot_ids == hard.cot_ids
    assert mux.answer_ids == hard.answer_ids and gum.answer_ids == hard.answer_ids


# --------------------------------------------------------------------------- multiplex and gumbel densities

def test_multiplex_log_prob_is_the_sum_of_the_draws_categorical_log_probs():
    torch.manual_seed(3)
    z, tau = torch.randn(50, 13, dtype=torch.float64), 0.7
    ids = torch.randint(0, 13, (50, 3))
    gate = torch.rand(50) > 0.3
    cat = torch.distributions.Categorical(logits=z / tau)
    per_draw = torch.stack([cat.log_prob(ids[:, k]) for k in range(3)], 1)       # (50, 3)
    torch.testing.assert_close(multiplex.log_prob(z, ids, None, tau), per_draw.sum(1))
    # a gated step feeds the first draw and scores it alone
    torch.testing.assert_close(multiplex.log_prob(z, ids, gate, tau), torch.where(gate, per_draw.sum(1), per_draw[:, 0]))


@pytest.mark.parametrize("lam", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("tau", [0.5, 1.0])
def test_gumbel_log_density_is_the_concrete_density_on_the_top_k_support(lam, tau):
    """log q(y) == RelaxedOneHotCategorical(lambda, logits = the top-k logits / tau).log_prob(y), with y drawn by
    the mode itself (float64, so that no y_j underflows for the oracle)."""
    torch.manual_seed(4)
    z = 2 * torch.randn(64, 40, dtype=torch.float64)
    mode = CoTMode("gumbel", tau=tau, gumbel_lambda=lam, gumbel_top_k=5)
    ids, log_y = gumbel.draw(z, mode, row_keys(0, 0, torch.arange(64), torch.zeros(64, dtype=torch.long)), t=3)
    assert torch.equal(ids, z.topk(5, dim=-1).indices)
    top = z.gather(-1, ids)
    oracle = torch.distributions.RelaxedOneHotCategorical(torch.tensor(lam, dtype=torch.float64), logits=top / tau)
    y = log_y.exp()
    torch.testing.assert_close(y.sum(-1), torch.ones(64, dtype=torch.float64))
    torch.testing.assert_close(gumbel.log_density(gumbel.log_pi(top, tau), log_y, lam), oracle.log_prob(y))


def test_gumbel_draws_are_gumbel_softmax_samples():
    """Gumbel-max: argmax y ~ pi (whatever lambda), the class probabilities renormalised over the top k."""
    n, V = 20000, 9
    z = torch.tensor([[2.0, 1.5, 1.0, 0.3, -1.0, -2.0, 0.0, -0.5, 0.9]]).expand(n, V)
    mode = CoTMode("gumbel", gumbel_top_k=4, gumbel_lambda=0.5)
    ids, log_y = gumbel.draw(z, mode, row_keys(5, 0, torch.arange(n), torch.zeros(n, dtype=torch.long)), t=0)
    pi = torch.softmax(z[0, ids[0]], -1)
    freq = torch.bincount(log_y.argmax(-1), minlength=4).double() / n
    assert (freq - pi.double()).abs().max() < 4 * math.sqrt(0.25 / n), (freq, pi)


def test_multiplex_draws_are_independent_draws_from_p():
    """Each of the K draws follows p = softmax(z / tau), and two draws of a step are independent (joint = p x p)."""
    n = 40000
    p = torch.tensor([0.1, 0.2, 0.3, 0.4])
    z = p.log().expand(n, 4)
    ids, w, gate = multiplex.draw(z, CoTMode("multiplex", multiplex_k=3), row_keys(7, 0, torch.arange(n),
                                                                                 torch.zeros(n, dtype=torch.long)), t=2)
    assert gate is None and torch.equal(w, torch.full((n, 3), 1 / 3))
    for k in range(3):
        freq = torch.bincount(ids[:, k], minlength=4).float() / n
        assert (freq - p).abs().max() < 0.01, (k, freq)
    joint = torch.bincount(ids[:, 0] * 4 + ids[:, 1], minlength=16).float().view(4, 4) / n
    assert (joint - p[:, None] * p[None, :]).abs().max() < 0.01


def test_multiplex_gate_mixes_only_above_the_entropy_threshold():
    z = torch.tensor([[10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])      # entropy ~0 and ln 4
    keys = row_keys(0, 0, torch.arange(2), torch.zeros(2, dtype=torch.long))
    ids, w, gate = multiplex.draw(z, CoTMode("multiplex", multiplex_gate=1.0), keys, t=0)
    assert gate.tolist() == [False, True]
    torch.testing.assert_close(w, torch.tensor([[1.0, 0.0, 0.0], [1 / 3, 1 / 3, 1 / 3]]))


def test_mix_rows_is_the_weighted_sum_of_the_chosen_rows():
    torch.manual_seed(5)
    E = torch.randn(10, 4)
    ids, wts = torch.tensor([[1, 1, 7], [0, 3, 9]]), torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    want = torch.stack([0.5 * E[1] + 0.5 * E[7], E[0]])
    torch.testing.assert_close(mix_rows(E, ids, wts), want)
    assert torch.equal(mix_rows(E, ids[:, :1], torch.ones(2, 1)), E[ids[:, 0]])      # K = 1: the row exactly
