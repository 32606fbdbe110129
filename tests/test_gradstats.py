"""softcot.gradstats: the signal-to-noise statistics of independent gradient estimates against closed forms,
and one batch drawn as training draws it."""
from __future__ import annotations

import pytest
import torch

from softcot.gradstats import grad_stats, sample_batch
from softcot.schema import CoTMode, RolloutConfig
from tests.helpers import PARITY_ROLLOUT, make_tiny, parity_reward


def test_snr_statistics_against_closed_forms():
    torch.manual_seed(0)
    mu = torch.randn(50)
    same = [mu.clone() for _ in range(4)]
    s = grad_stats(same)
    assert s["snr"] == pytest.approx(1.0) and s["cos"] == pytest.approx(1.0)
    assert s["grad_norm"] == pytest.approx(float(mu.norm()))
    noise = [torch.randn(20000) for _ in range(10)]     # pure noise: snr ~ 1/n, cosine ~ 0
    s = grad_stats(noise)
    assert s["snr"] == pytest.approx(0.1, rel=0.05) and abs(s["cos"]) < 0.05
    assert abs(s["snr_unbiased"]) < 0.01
    # |E g|^2 / E|g|^2 with signal m and noise of variance v per coordinate: (m^2) / (m^2 + v), n -> large
    m = torch.full((20000,), 1.0)
    s = grad_stats([m + torch.randn(20000) for _ in range(200)])
    assert s["snr"] == pytest.approx(0.5 + 0.5 / 200, rel=0.03)
    assert s["snr_unbiased"] == pytest.approx(0.5, rel=0.03)
    s = grad_stats([m + torch.randn(20000) for _ in range(5)])     # few batches: the unbiased form stays ~0.5
    assert s["snr_unbiased"] == pytest.approx(0.5, abs=0.05) and s["snr"] > 0.55



def test_a_batch_is_prompts_times_group_rollouts_with_rloo_advantages():
    model, tok = make_tiny("llama", seed=3)
    records = [{"id": str(i), "question": f"{i}+1", "answer": str(i + 1)} for i in range(10)]
    ro, rewards, adv = sample_batch(model, tok, records, CoTMode("hard"), RolloutConfig(**PARITY_ROLLOUT),
                                    "Q: {question}\nA:", 3, 4, torch.Generator().manual_seed(0),
                                    torch.Generator().manual_seed(1), parity_reward)
    assert len(ro) == len(rewards) == len(adv) == 12
    for g in range(3):                     # every group shares one prompt; advantages sum to 0 per group
        assert len(set(ro.prompt_text[4 * g:4 * g + 4])) == 1
        assert float(adv[4 * g:4 * g + 4].sum()) == pytest.approx(0.0, abs=1e-4)
