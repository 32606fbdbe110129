"""Reading the workflow's result files and aggregating them over seeds (shared by tables and figures).

Paths carry the metadata:  .../eval/<model>/<dataset>/summary.json,  .../ood/<model>.json,
.../train/<variant>/seed<k>/ (metrics.jsonl, val.jsonl). A model is "base" or "<variant>_seed<k>";
a variant is a mode ("soft") or a mode with a tag ("fuzzy-gamma1.0", "soft-null"): softcot.runs parses them.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from softcot.runs import BASE_METHOD, method_of  # noqa: F401  (method_of: re-exported for softcot.tables)

SETTING_COLS = [("hard", "H"), ("fuzzy", "F"), ("soft", "S")]
METHOD_ORDER = [BASE_METHOD, "hard", "fuzzy", "soft"]
METHOD_ORDER += ["multiplex", "gumbel"]          # the training kinds beyond the paper (docs/estimators.md)


def mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def fmt(m: float, sd: float, n: int, scale: float = 100.0, digits: int = 1) -> str:
    if math.isnan(m):
        return "-"
    if n <= 1:
        return f"{m * scale:.{digits}f}"
    return f"{m * scale:.{digits}f}±{sd * scale:.{digits}f}"


def load_eval(paths: list[str | Path]) -> dict:
    """{(method, dataset, setting): [summary dicts over seeds]}; each dict also names its "model"."""
    out = defaultdict(list)
    for p in map(Path, paths):
        if p.name != "summary.json":
            continue
        dataset, model = p.parent.name, p.parent.parent.name
        s = json.loads(p.read_text())
        for setting, v in s["settings"].items():
            out[(method_of(model), dataset, setting)].append({**v, "model": model})
    return out


def top_k(summary: dict) -> tuple[int, float]:
    ks = {int(k): v for k, v in summary["pass_at_k"].items()}
    k = max(ks)
    return k, ks[k]


def methods_present(keys) -> list[str]:
    found = {k[0] for k in keys}
    ordered = [m for m in METHOD_ORDER if m in found]
    return ordered + sorted(found - set(ordered))


def load_training(dirs: list[str | Path]) -> dict:
    """{variant: [{"metrics": [...], "val": [...], "seed": k}, ...]}"""
    out = defaultdict(list)
    for d in map(Path, dirs):
        if not (d / "metrics.jsonl").exists():
            continue
        read = lambda name: [json.loads(l) for l in (d / name).read_text().splitlines() if l.strip()]  # noqa: E731
        out[d.parent.name].append({"seed": d.name, "metrics": read("metrics.jsonl"),
                                   "val": read("val.jsonl") if (d / "val.jsonl").exists() else []})
    return out


def load_ood(paths: list[str | Path]) -> dict:
    """{(method, bench): [{"acc", "acc_norm", "nll", "model"} over seeds]}"""
    out = defaultdict(list)
    for p in map(Path, paths):
        s = json.loads(p.read_text())
        for name, m in s["models"].items():
            for bench, v in m["benchmarks"].items():
                out[(method_of(p.stem), bench)].append({**v, "model": p.stem})
    return out
