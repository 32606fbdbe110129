"""The paper's four findings, judged on our tables' numbers (mean ± std over seeds) by fixed rules.

    rows = softcot.tables.read_csv("results/toy/tables/table3_5.csv")
    ood = softcot.tables.read_csv("results/toy/tables/table2.csv")
    for f in judge(rows, ood, ["test", "test_hard"]): print(f.key, f.verdict)

F1  greedy pass@1 parity: hard, soft and fuzzy training give the same greedy pass@1 under hard inference (HG).
F2  diversity: soft and fuzzy training beat hard training at pass@n under hard inference (HSn, the largest k).
F3  out of domain: soft and fuzzy training disturb the NLL of the correct answer less than hard training.
F4  deployment: for every training mode, hard greedy inference is the best (fuzzy or soft greedy is not higher).

Every comparison sets a difference of means against K = 2 pooled seed stds,
pooled std = sqrt(((n_a - 1) s_a^2 + (n_b - 1) s_b^2) / (n_a + n_b - 2)) (a base value, one run, adds no
spread). "Level" means |difference| <= K x pooled std; "above" means difference > K x pooled std. A finding is
held when every comparison it makes, on every test set (OOD set for F3), comes out as the finding says;
undetermined when some comparison has no spread to measure (fewer than two seeds on both sides); not tested when
the tables lack the numbers. Only the paper's three training modes enter; other methods are in the tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations

K = 2.0
PAPER_MODES = ("hard", "soft", "fuzzy")
BASE = "no finetune"


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float          # nan below two runs
    n: int

    def text(self, spec: str = ".1f") -> str:
        return f"{self.mean:{spec}}" if self.n < 2 else f"{self.mean:{spec}} ± {self.std:{spec}}"


def pooled_std(a: Stat, b: Stat) -> float:
    dof = (a.n - 1) + (b.n - 1)
    if dof <= 0:
        return math.nan
    ss = sum((s.n - 1) * s.std ** 2 for s in (a, b) if s.n > 1)
    return math.sqrt(ss / dof)


@dataclass
class Comparison:
    where: str          # test set or OOD set
    what: str           # e.g. "soft - hard, HS8"
    a: str              # the two sides as text, e.g. "soft 70.1 ± 1.0"
    b: str
    diff: float
    pooled: float
    want: str           # "level", "above" or "not above"
    spec: str = ".1f"

    @property
    def tol(self) -> float:
        return K * self.pooled

    @property
    def determined(self) -> bool:
        return not math.isnan(self.pooled)

    @property
    def ok(self) -> bool:
        if self.want == "level":
            return abs(self.diff) <= self.tol
        if self.want == "above":
            return self.diff > self.tol
        return self.diff <= self.tol                       # "not above"

    @property
    def outcome(self) -> str:
        if not self.determined:
            return "no spread (one seed)"
        if abs(self.diff) <= self.tol:
            return "level"
        return "above" if self.diff > 0 else "below"


@dataclass
class Finding:
    key: str
    claim: str
    rule: str
    comparisons: list[Comparison] = field(default_factory=list)
    missing: str = ""

    @property
    def verdict(self) -> str:
        if not self.comparisons:
            return "not tested"
        if not all(c.determined for c in self.comparisons):
            return "undetermined"
        return "held" if all(c.ok for c in self.comparisons) else "not held"


CLAIMS = {
    "F1": "Greedy pass@1 parity: hard, soft and fuzzy training reach the same greedy pass@1 under hard inference.",
    "F2": "Soft and fuzzy training beat hard training at pass@k for the largest k (hard inference).",
    "F3": "Soft and fuzzy training disturb the out-of-domain NLL of the correct answer less than hard training.",
    "F4": "Hard inference is the best deployment for every training mode (hard, soft, fuzzy).",
}
RULES = {
    "F1": f"held if, on every test set, every pair of the three modes is level in HG: |mean difference| <= "
          f"{K:g} x pooled std.",
    "F2": f"held if, on every test set, soft - hard and fuzzy - hard in HSn (the largest k) are each "
          f"> {K:g} x pooled std.",
    "F3": f"held if, on every OOD set, |NLL(hard) - NLL(base)| - |NLL(m) - NLL(base)| > {K:g} x pooled std "
          f"(hard, m), for m = soft and fuzzy (NLL means over seeds).",
    "F4": f"held if, for every mode and test set, FG - HG and SG - HG are each <= {K:g} x pooled std "
          f"(greedy pass@1 under fuzzy / soft inference is not above hard's).",
}


def _index(rows: list[dict]) -> dict:
    return {(r["dataset"], r["method"], r["metric"]): Stat(r["mean"], r["std"], r["n"]) for r in rows}


def _passn_metric(idx: dict, dataset: str) -> str | None:
    ks = [int(m[2:]) for (d, _, m) in idx if d == dataset and m.startswith("HS") and m[2:].isdigit()]
    return f"HS{max(ks)}" if ks else None


def _pair(where, what, name_a, a: Stat, name_b, b: Stat, want, spec=".1f") -> Comparison:
    return Comparison(where, what, f"{name_a} {a.text(spec)}", f"{name_b} {b.text(spec)}", a.mean - b.mean,
                      pooled_std(a, b), want, spec)


def judge(nine_rows: list[dict], ood_rows: list[dict], test_sets: list[str]) -> list[Finding]:
    """The four findings from the rows of tables/table3_5.csv and tables/table2.csv (softcot.tables.read_csv)."""
    idx, ood = _index(nine_rows), _index(ood_rows)
    out = {k: Finding(k, CLAIMS[k], RULES[k]) for k in CLAIMS}
    for d in test_sets:
        modes = [m for m in PAPER_MODES if (d, m, "HG") in idx]
        for a, b in combinations(modes, 2):
            out["F1"].comparisons.append(_pair(d, f"{a} - {b}, HG", a, idx[(d, a, "HG")], b, idx[(d, b, "HG")],
                                               "level"))
        metric = _passn_metric(idx, d)
        if metric and (d, "hard", metric) in idx:
            for m in ("soft", "fuzzy"):
                if (d, m, metric) in idx:
                    out["F2"].comparisons.append(_pair(d, f"{m} - hard, {metric}", m, idx[(d, m, metric)], "hard",
                                                       idx[(d, "hard", metric)], "above"))
        for m in modes:
            if (d, m, "HG") not in idx:
                continue
            for other in ("FG", "SG"):
                if (d, m, other) in idx:
                    out["F4"].comparisons.append(_pair(d, f"train {m}: {other} - HG", other, idx[(d, m, other)],
                                                       "HG", idx[(d, m, "HG")], "not above"))
    for bench in dict.fromkeys(d for d, _, metric in ood if metric == "NLL"):
        base, hard = ood.get((bench, BASE, "NLL")), ood.get((bench, "hard", "NLL"))
        if base is None or hard is None:
            continue
        for m in ("soft", "fuzzy"):
            other = ood.get((bench, m, "NLL"))
            if other is None:
                continue
            out["F3"].comparisons.append(Comparison(
                bench, f"|Δ hard| - |Δ {m}| (NLL vs base {base.mean:.3f})",
                f"hard {hard.text('.3f')} (Δ {hard.mean - base.mean:+.3f})",
                f"{m} {other.text('.3f')} (Δ {other.mean - base.mean:+.3f})",
                abs(hard.mean - base.mean) - abs(other.mean - base.mean), pooled_std(hard, other), "above", ".3f"))
    return list(out.values())
