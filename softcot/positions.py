"""Where the CoT term's gradient comes from: its split over CoT positions (`softcot diagnose --positions`).

The CoT term of the loss, -(1/n) sum_g A_g sum_t l_{g,t}, is a sum over the scored CoT steps t of the n rollouts,
so its gradient is the sum of the gradients of its parts. The scored steps go into disjoint buckets:
    by the step's index t from the CoT's start, at the edges given (1 2 4 8 16 32 -> 0, 1, 2-3, ..., 32+), and
    marker: the step that completed the marker (the last step of a row whose CoT ended by the marker);
so g_cot = sum_k g_k exactly. Steps after a row's CoT ended are holes, not scored: they carry no gradient.
Per bucket and mode, over `batches` independent batches (B prompts x G rollouts, RLOO advantages):
    grad_norm   mean |g_k|, and grad_norm_max, its largest over the batches (one batch can carry a spike)
    share       mean <g_k, g_cot> / |g_cot|^2: the part of |g_cot|^2 the bucket carries (the shares sum to 1;
                one can be negative where a bucket pulls against the rest)
    vs_answer   mean |g_k| / |g_answer|, the answer term's gradient on the same batch
    slots       mean scored steps in the bucket per batch, and steps_fraction, their share of all scored steps
                (a bucket whose share exceeds its steps_fraction carries more than its steps' worth)
    snr_unbiased  the bucket's own gradient signal-to-noise across batches (softcot.diagnose)
Each bucket's gradient comes from the training loss's own scorer (softcot.loss.Scorer) with only that bucket's
steps scored and every CoT input in place, so the split follows the loss of any CoT mode.
"""
from __future__ import annotations

import dataclasses

import torch

from softcot.gradstats import flat_grad, grad_stats, sample_batch
from softcot.loss import Scorer, backward_microbatches, microbatches
from softcot.rollout import Rollout
from softcot.schema import CoTMode, RolloutConfig

MARKER_BUCKET = "marker"
DEFAULT_EDGES = (1, 2, 4, 8, 16, 32)


def bucket_labels(edges) -> list[str]:
    """[1, 2, 4] -> ['0', '1', '2-3', '4+', 'marker']: the position buckets, then the marker's."""
    edges = list(edges)
    if not edges or edges[0] < 1 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"positions: got {edges}; give increasing step indices >= 1, e.g. 1 2 4 8 16 32")
    lows = [0] + edges
    labels = [str(lo) if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(lows, edges)]
    return labels + [f"{edges[-1]}+", MARKER_BUCKET]


def step_buckets(cot_mask: torch.Tensor, cot_start: int, stopped_by_marker: list[bool], edges) -> torch.Tensor:
    """(B, S) bucket index (into bucket_labels(edges)) of every scored CoT step, -1 at every other slot."""
    B, S = cot_mask.shape
    t = torch.arange(S, device=cot_mask.device) - cot_start
    idx = torch.bucketize(t, torch.tensor(list(edges), device=cot_mask.device), right=True).expand(B, S)
    # A row's scored steps are its first cot_len CoT slots; the holes after them are not scored.
    last = cot_start + cot_mask.sum(1) - 1
    marker = torch.tensor(stopped_by_marker, device=cot_mask.device)[:, None] & (
        torch.arange(S, device=cot_mask.device)[None, :] == last[:, None])
    idx = torch.where(marker, torch.full_like(idx, len(edges) + 1), idx)
    return torch.where(cot_mask, idx, torch.full_like(idx, -1))


class _KeepScorer(Scorer):
    """The loss's scorer, scoring only the CoT steps a rollout's `cot_mask` keeps, with the forward pass over the
    full rollout (extras["inputs"]): soft inputs at the steps left out stay in place."""

    def hidden_states(self, ro: Rollout):
        return super().hidden_states(ro.extras.get("inputs", ro))


def restrict(ro: Rollout, keep: torch.Tensor) -> Rollout:
    """`ro` with only the scored CoT steps in `keep` (B, S) scored; its forward pass is unchanged."""
    return dataclasses.replace(ro, cot_mask=ro.cot_mask & keep, extras={"inputs": ro})


def bucket_gradients(model, ro: Rollout, adv: torch.Tensor, edges, micro_batch: int | None = None) -> dict:
    """{bucket label: flat gradient of that bucket's part of the CoT term}, plus "cot" (the whole CoT term, with
    the loss's own Scorer) and "answer", and {label: scored steps} under "slots"."""
    n = len(adv)
    size = micro_batch or n
    labels = bucket_labels(edges)
    scorer, plain = _KeepScorer(model), Scorer(model)
    out, slots = {}, {}
    for k, label in enumerate(labels):
        model.zero_grad(set_to_none=True)
        count = 0
        for sub, a in microbatches([ro], adv, size):
            keep = step_buckets(sub.cot_mask, sub.cot_start, sub.stopped_by_marker, edges) == k
            count += int(keep.sum())
            if keep.any():                      # an empty bucket adds nothing: spare its forward pass
                (-(a * scorer(restrict(sub, keep))["cot"]).sum() / n).backward()
        out[label], slots[label] = flat_grad(model), count
    for name in ("cot", "answer"):
        model.zero_grad(set_to_none=True)
        backward_microbatches(plain, [ro], adv, size, lambda t, a, name=name: -(a * t[name]).sum() / n)
        out[name] = flat_grad(model)
    model.zero_grad(set_to_none=True)
    return {"grads": out, "slots": slots}


def position_gradients(model, tok, records, mode: CoTMode, rcfg: RolloutConfig, template: str, prompts: int,
                       group: int, batches: int, seed: int, reward_fn, edges=DEFAULT_EDGES,
                       micro_batch: int | None = None) -> dict:
    """The bucket statistics of the module docstring for one mode, over `batches` batches of B x G rollouts."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.Generator().manual_seed(seed + 1)
    labels = bucket_labels(edges)
    grads = {k: [] for k in labels + ["cot", "answer"]}
    slots = {k: [] for k in labels}
    share = {k: [] for k in labels}
    ratio = {k: [] for k in labels + ["cot"]}
    rows_by_marker = []
    for _ in range(batches):
        ro, rewards, adv = sample_batch(model, tok, records, mode, rcfg, template, prompts, group, pick, g, reward_fn)
        res = bucket_gradients(model, ro, adv, edges, micro_batch)
        gr = res["grads"]
        cot_sq = float(gr["cot"].pow(2).sum())
        ans = float(gr["answer"].norm())
        for k in labels:
            grads[k].append(gr[k])
            slots[k].append(res["slots"][k])
            share[k].append(float(gr[k] @ gr["cot"]) / cot_sq if cot_sq > 0 else float("nan"))
        for k in labels + ["cot"]:
            ratio[k].append(float(gr[k].norm()) / ans if ans > 0 else float("nan"))
        grads["cot"].append(gr["cot"])
        grads["answer"].append(gr["answer"])
        rows_by_marker.append(sum(ro.stopped_by_marker) / len(ro))
    def mean(xs):
        """Over the batches that had a gradient (a batch whose advantages are all 0 has none)."""
        xs = [x for x in xs if x == x]
        return sum(xs) / len(xs) if xs else float("nan")

    buckets = {}
    all_slots = sum(sum(v) for v in slots.values())
    for k in labels:
        s = grad_stats(grads[k])
        buckets[k] = {"grad_norm": s["grad_norm"], "grad_norm_max": max(float(x.norm()) for x in grads[k]),
                      "share": mean(share[k]), "vs_answer": mean(ratio[k]),
                      "slots": mean(slots[k]), "steps_fraction": sum(slots[k]) / all_slots if all_slots else 0.0,
                      "snr_unbiased": s["snr_unbiased"]}
    return {"edges": list(edges), "labels": labels, "buckets": buckets, "batches": batches,
            "cot": {**grad_stats(grads["cot"]), "vs_answer": mean(ratio["cot"])}, "answer": grad_stats(grads["answer"]),
            "rows_ended_by_marker": mean(rows_by_marker)}
