"""pass@k: the unbiased estimator of the probability that at least one of k samples is correct.

    pass_at_k(n=32, c=3, k=8)                   # one problem: n samples drawn, c of them correct
    pass_at_k_curve([(32, 3), (32, 0)], [1, 8]) # {1: ..., 8: ...}, the mean over problems
    default_ks(32)                              # [1, 2, 4, 8, 16, 32]

pass@k = 1 - C(n - c, k) / C(n, k)  (Chen et al. 2021), computed as the product
prod_{i = n-c+1}^{n} (1 - k / i), which never forms the huge binomials and stays exact to float precision.
"""
from __future__ import annotations

from typing import Iterable


def _check(n: int, c: int, k: int) -> None:
    for name, v in (("n", n), ("c", c), ("k", k)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"pass@k: {name} must be an integer, got {v!r}")
    if n < 1 or c < 0 or k < 1:
        raise ValueError(f"pass@k: need n >= 1, c >= 0 and k >= 1; got n={n}, c={c}, k={k}")
    if c > n:
        raise ValueError(f"pass@k: c={c} correct samples out of only n={n}; c cannot exceed n")
    if k > n:
        raise ValueError(f"pass@k: k={k} exceeds the number of samples n={n}; the unbiased estimator needs "
                         f"n >= k (draw at least {k} samples per problem or ask for a smaller k)")


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that a random k-subset of the n samples (c of them correct) holds a correct one."""
    _check(n, c, k)
    if n - c < k:          # every k-subset contains a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_curve(counts: Iterable[tuple[int, int]], ks: Iterable[int]) -> dict[int, float]:
    """{k: mean over problems of pass_at_k(n_i, c_i, k)} for per-problem (n_i, c_i) counts."""
    counts = [(int(n), int(c)) for n, c in counts]
    if not counts:
        raise ValueError("pass@k: no problems given")
    return {k: sum(pass_at_k(n, c, k) for n, c in counts) / len(counts) for k in ks}


def default_ks(n: int) -> list[int]:
    """1, 2, 4, ... up to n, with n itself always included."""
    if n < 1:
        raise ValueError(f"default_ks: n must be >= 1, got {n}")
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    ks.append(n)
    return ks
