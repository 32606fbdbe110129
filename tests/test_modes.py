"""softcot.modes: the soft-token mixer p E, the noise scale sigma = gamma rms(E), and the greedy variants of
each mode against hard greedy decoding."""
from __future__ import annotations

import math

import pytest
import torch

from softcot.modes import embedding_rms, mix, noise_sigma
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
