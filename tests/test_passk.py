"""pass@k against the closed form 1 - C(n-c, k) / C(n, k) (math.comb as the oracle)."""
from __future__ import annotations

from math import comb

import pytest

from softcot.passk import default_ks, pass_at_k, pass_at_k_curve


def closed_form(n: int, c: int, k: int) -> float:
    return 1 - comb(n - c, k) / comb(n, k)


@pytest.mark.parametrize("n,c,k,expected", [
    (10, 0, 1, 0.0),            # nothing correct
    (10, 0, 10, 0.0),
    (10, 10, 1, 1.0),           # everything correct
    (5, 5, 5, 1.0),
    (10, 3, 1, 0.3),            # pass@1 = c / n
    (4, 1, 2, 0.5),             # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (4, 2, 2, 5 / 6),           # 1 - 1/6
    (5, 1, 5, 1.0),             # k = n: solved iff c > 0
    (5, 0, 5, 0.0),
    (32, 1, 32, 1.0),
    (8, 6, 3, 1.0),             # n - c < k
])
def test_hand_worked(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12)


def test_exhaustive_small_grid():
    for n in range(1, 21):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(closed_form(n, c, k), abs=1e-12), (n, c, k)


def test_large_n_is_stable():
    # C(1000, 500) overflows a float; the product form does not need it.
    got = pass_at_k(1000, 3, 500)
    assert got == pytest.approx(closed_form(1000, 3, 500), abs=1e-12)
    assert pass_at_k(1000, 1, 1) == pytest.approx(1 / 1000, abs=1e-15)


def test_monotone_in_k():
    for n, c in [(32, 1), (32, 5), (16, 15), (7, 3)]:
        vals = [pass_at_k(n, c, k) for k in range(1, n + 1)]
        assert all(a <= b + 1e-15 for a, b in zip(vals, vals[1:]))


@pytest.mark.parametrize("n,c,k,words", [
    (4, 1, 5, "k=5 exceeds the number of samples n=4"),
    (4, 5, 1, "c=5"),
    (4, -1, 1, "c >= 0"),
    (-1, 0, 1, "n >= 1"),
    (4, 1, 0, "k >= 1"),
    (4.0, 1, 1, "integer"),
])
def test_errors(n, c, k, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        pass_at_k(n, c, k)


def test_curve_and_default_ks():
    counts = [(4, 1), (4, 0), (4, 4)]
    curve = pass_at_k_curve(counts, [1, 2, 4])
    assert curve[1] == pytest.approx((0.25 + 0 + 1) / 3)
    assert curve[2] == pytest.approx((0.5 + 0 + 1) / 3)
    assert curve[4] == pytest.approx((1 + 0 + 1) / 3)
    with pytest.raises(ValueError, match="no problems"):
        pass_at_k_curve([], [1])
    assert default_ks(1) == [1]
    assert default_ks(2) == [1, 2]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(32) == [1, 2, 4, 8, 16, 32]
    assert default_ks(12) == [1, 2, 4, 8, 12]
    with pytest.raises(ValueError):
        default_ks(0)
