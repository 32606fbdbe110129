"""The optimiser and the learning-rate schedule: AdamW, linear warm-up, then cosine decay (or constant).

    opt, sched = make_optimizer(model.parameters(), OptimConfig(lr=6e-6, warmup_steps=20), total_steps=4000)
"""
from __future__ import annotations

import math

import torch

from softcot.schema import OptimConfig


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at 0-based `step`: (step + 1) / (warmup + 1) during warm-up, then
    a cosine from 1 down to `min_ratio` at `total` (or 1 throughout for "constant")."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(params, cfg: OptimConfig, total_steps: int):
    """AdamW over `params` (an iterable of tensors or of parameter groups) and its LambdaLR schedule."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: lr_factor(step, cfg.warmup_steps, total_steps, cfg.schedule, cfg.min_lr_ratio))
    return opt, sched
