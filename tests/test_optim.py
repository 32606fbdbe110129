"""softcot.optim: the learning-rate factor against its closed form (linear warm-up, cosine to min_lr_ratio,
constant), and the optimiser and schedule that make_optimizer builds from an OptimConfig."""
from __future__ import annotations

import math

import pytest
import torch

from softcot.optim import lr_factor, make_optimizer
from softcot.schema import OptimConfig


def test_warmup_is_a_linear_ramp_from_one_over_warmup_plus_one():
    assert [lr_factor(s, 4, 20) for s in range(4)] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr_factor(4, 4, 20) == 1.0                                  # the first step after warm-up
    assert lr_factor(0, 0, 20) == 1.0                                  # no warm-up


def test_cosine_decays_to_min_ratio_at_total_and_stays_there():
    # warm-up 4, total 20: progress (s - 4) / 16; factor = 0.1 + 0.9 * (1 + cos(pi * progress)) / 2
    assert lr_factor(8, 4, 20, "cosine", 0.1) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))   # 0.868198
    assert lr_factor(8, 4, 20, "cosine", 0.1) == pytest.approx(0.8681980515)
    assert lr_factor(12, 4, 20, "cosine", 0.1) == pytest.approx(0.55)
    assert lr_factor(20, 4, 20, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(35, 4, 20, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(10, 0, 20) == pytest.approx(0.5)
    factors = [lr_factor(s, 4, 20) for s in range(4, 21)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))


def test_constant_schedule_is_one_after_warmup():
    assert [lr_factor(s, 2, 10, "constant", 0.1) for s in range(6)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 1, 1])
    assert lr_factor(100, 2, 10, "constant") == 1.0


def test_make_optimizer_follows_the_config():
    p = torch.nn.Parameter(torch.ones(3))
    cfg = OptimConfig(lr=1e-3, warmup_steps=2, schedule="cosine", min_lr_ratio=0.2, weight_decay=0.1,
                      betas=[0.8, 0.95], eps=1e-6)
    opt, sched = make_optimizer([p], cfg, total_steps=6)
    assert isinstance(opt, torch.optim.AdamW)
    g = opt.param_groups[0]
    assert (g["betas"], g["eps"], g["weight_decay"]) == ((0.8, 0.95), 1e-6, 0.1)
    lrs = []
    for _ in range(8):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1e-3 * lr_factor(s, 2, 6, "cosine", 0.2) for s in range(8)])
    assert lrs[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3]) and lrs[6] == pytest.approx(2e-4)
