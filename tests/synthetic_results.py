"""A small synthetic results/<experiment>/ tree in the workflow's layout, with chosen numbers (torch-free).

    make_tree(tmp_path / "results" / "toy")              # every file the tables, figures and docs read
    make_tree(root, g1={"hard": 50, "soft": 60}, ...)    # choose the means that decide a finding

Each run's value is its method's mean plus a fixed per-seed offset (-1, +1, 0 points for seeds 0, 1, 2), so
the seed std of every trained method is exactly 1 point (seeds 0-2) and the means are the ones given.
"""
from __future__ import annotations

import json
from pathlib import Path

OFFSET = {0: -1.0, 1: 1.0, 2: 0.0}        # per-seed offsets in points: mean 0, sample std 1 over seeds 0-2
BASE = "base"


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) if not isinstance(obj, str) else obj)


def _setting(greedy: float, sample: float, passn: float, n: int, kind: str, entropy_len: int = 12) -> dict:
    """One inference setting's summary (values in %)."""
    ks = [k for k in (1, 2, 4, 8, 16, 32) if k <= n]
    pk = {str(k): (sample + (passn - sample) * (i / max(1, len(ks) - 1))) / 100 for i, k in enumerate(ks)}
    return {"pass1": greedy / 100, "pass_at_k": pk, "mode": {"kind": kind},
            "entropy_by_position": [0.1 + 0.05 * t for t in range(entropy_len)],
            "entropy_count_by_position": [100 if t < entropy_len - 4 else 2 for t in range(entropy_len)],
            "diversity": {"distinct_answers": 2.0, "distinct_cots": 3.0}, "n_samples": n}


def make_tree(res: Path, *, modes=("hard", "soft", "fuzzy"), seeds=(0, 1, 2), test_sets=("test", "test_hard"),
              ood_sets=("ood",), n=8, base_g1=40.0, g1=None, passn=None, nll=None, infer=None, toy=True,
              extra_variants=()) -> Path:
    """Write a results tree under `res`; returns `res`.

    g1: {method: hard greedy pass@1 mean (%)}; passn: {method: hard pass@n mean}; nll: {method: OOD NLL
    mean, base included}; infer: {(method, "fuzzy"|"soft"): greedy pass@1 mean under that inference}.
    Defaults make every finding of softcot.docs hold except F2.
    """
    g1 = {"hard": 45.0, "soft": 45.5, "fuzzy": 44.5, **(g1 or {})}
    passn = {"hard": 70.0, "soft": 70.0, "fuzzy": 70.5, **(passn or {})}
    nll = {BASE: 0.70, "hard": 0.80, "soft": 0.71, "fuzzy": 0.705, **(nll or {})}
    infer = infer or {}
    models = [(BASE, None)] + [(m, s) for m in list(modes) + list(extra_variants) for s in seeds]
    for method, seed in models:
        name = BASE if seed is None else f"{method}_seed{seed}"
        off = 0.0 if seed is None else OFFSET.get(seed, 0.0)
        kind = method.split("-")[0]
        for d in test_sets:
            hard = base_g1 if seed is None else g1.get(kind, base_g1)
            shift = 0.0 if d == test_sets[0] else -30.0
            settings = {}
            for inf in ("hard", "fuzzy", "soft"):
                gv = infer.get((method if seed is not None else "no finetune", inf), hard - (0 if inf == "hard" else 3))
                pn = (60.0 if seed is None else passn.get(kind, 60.0)) - (0 if inf == "hard" else 5)
                settings[f"{inf}_greedy"] = _setting(gv + off + shift, gv + off + shift, gv + off + shift, 1, inf)
                settings[f"{inf}_sample"] = _setting(gv - 10 + off + shift, gv - 10 + off + shift,
                                                     pn + off + shift, n, inf)
            _write(res / "eval" / name / d / "summary.json", {"config": {}, "n_problems": 64, "settings": settings})
        value = nll[BASE] if seed is None else nll.get(kind, nll[BASE])
        _write(res / "ood" / f"{name}.json", {"models": {name: {"benchmarks": {
            b: {"acc": 0.6 + off / 100, "acc_norm": 0.6, "nll": value + off / 100, "n": 50} for b in ood_sets}}}})
        if seed is not None:
            run = res / "train" / method / f"seed{seed}"
            _write(run / "metrics.jsonl", "".join(json.dumps({"step": t, "reward_mean": 30 + t + off}) + "\n"
                                                  for t in range(1, 21)))
            _write(run / "val.jsonl", "".join(json.dumps({"step": t, "greedy_pass1": (base_g1 + t / 20 * (
                g1.get(kind, base_g1) - base_g1) + off) / 100}) + "\n" for t in (0, 10, 20)))
            _write(run / "summary.json", {"best_step": 20, "seed": seed, "steps": 20})
    if toy:
        _write(res / "base" / "base_eval.json", {"steps": 500, "n_params": 1000, **{
            d: {"greedy_acc": base_g1 / 100, "sample_acc": (base_g1 - 10) / 100, "n": 64} for d in test_sets},
            "ood": {"acc": 0.6, "acc_norm": 0.6, "n": 50, "nll": nll[BASE]}})
    return res


def eval_paths(res: Path) -> list[str]:
    return sorted(str(p) for p in (res / "eval").glob("*/*/summary.json"))


def ood_paths(res: Path) -> list[str]:
    return sorted(str(p) for p in (res / "ood").glob("*.json"))


def train_dirs(res: Path) -> list[str]:
    return sorted(str(p) for p in (res / "train").glob("*/seed*"))
