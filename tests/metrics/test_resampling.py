"""`vat.metrics.resampling`: the scene bootstrap, the sign-flip test and Holm's correction, against
numbers worked out by hand (in the comments)."""

import math

import numpy as np
import pytest

from tests.metrics.helpers import D_HAND
from vat import metrics as M

# The module promises NaN, never RuntimeWarning spam: any leak fails the test.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _well_behaved(n=60, seed=7):
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(n, 4))
    target = 1.0 + 0.5 * rng.normal(size=n)
    D = np.column_stack(
        [
            target,
            0.5 * target + 0.2 * rng.normal(size=n),  # co-moves with the target
            -0.3 * target + 0.2 * rng.normal(size=n),  # trades off
            0.1 + 0.3 * rng.normal(size=n),
        ]
    )
    return pre, pre + D


def test_bootstrap_is_deterministic_and_covers_the_point_estimate():
    pre, post = _well_behaved()
    a = M.bootstrap(pre, post, 0, n_resamples=300, seed=11)
    b = M.bootstrap(pre, post, 0, n_resamples=300, seed=11)
    c = M.bootstrap(pre, post, 0, n_resamples=300, seed=12)
    for field in ("gain", "gnd_l1", "tau", "nvat_offdiag"):
        np.testing.assert_equal(getattr(a, field), getattr(b, field))  # NaN-aware equality
    assert a.gain != c.gain
    D = M.shift(pre, post)
    point_tau = M.tax(D, 0)
    assert a.gain[0] <= M.gain(D, 0) <= a.gain[1]
    assert a.gnd_l1[0] <= M.gnd(D, 0).l1 <= a.gnd_l1[1]
    for v in (1, 2, 3):
        assert a.tau[v][0] <= point_tau[v] <= a.tau[v][1]
    assert all(math.isnan(x) for x in a.tau[0])
    assert a.nvat_offdiag[0] <= M.nvat_offdiag(M.coupling(D, min_overlap=2)) <= a.nvat_offdiag[1]
    assert a.gain_defined == 300 and a.n_resamples == 300
    sub = M.bootstrap(pre, post, 0, n_resamples=300, seed=11, scheme="subsample")
    assert sub.scheme == "subsample"
    # 80 % subsamples vary about half as much as the full sample's estimate (variance ratio
    # (n - m) / m = 1/4 at m = 0.8 n); rescaled by sqrt(m / (n - m)) = 2 their interval is as wide
    # as the bootstrap's, not a quarter-variance range labelled as a CI.
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    assert 0.8 < width(sub.gain) / width(a.gain) < 1.25


def test_bootstrap_identical_scenes_collapse_to_the_point():
    # every resample of identical rows is the same data: G = 1, l1 = (0.5 + 0.25) / 2 = 0.375,
    # tau = (0.5, -0.25); coupling is undefined (no variance) -> NaN interval
    D = np.tile([1.0, 0.5, -0.25], (8, 1))
    r = M.bootstrap(np.zeros_like(D), D, 0, n_resamples=50)
    assert r.gain == pytest.approx((1.0, 1.0))
    assert r.gnd_l1 == pytest.approx((0.375, 0.375))
    assert r.tau[1] == pytest.approx((0.5, 0.5))
    assert r.tau[2] == pytest.approx((-0.25, -0.25))
    assert all(math.isnan(x) for x in r.nvat_offdiag)


def test_bootstrap_zero_resamples_and_kendall():
    pre, post = _well_behaved(n=15)
    r = M.bootstrap(pre, post, 0, n_resamples=0)
    assert all(math.isnan(x) for x in r.gain + r.gnd_l1 + r.nvat_offdiag)
    k = M.bootstrap(pre, post, 0, n_resamples=20, coupling_method="kendall")
    assert 0 <= k.nvat_offdiag[0] <= k.nvat_offdiag[1] <= 1


def test_sign_flip_exact_hand_example():
    # 3 scenes -> 2^3 = 8 sign patterns, enumerated exactly.
    # target column [1, 1, 2], |sum| = 4: only +++ and --- reach 4 -> p_gain = 2/8
    # column 1 [0.5, -1, 1], |sum| = 0.5: every pattern gives |sum| >= 0.5 -> p = 8/8
    #   (sums: +-2.5, +-1.5, +-0.5, +-0.5)
    # column 2 [-1, 0, -1], |sum| = 2: the zero never matters; +-1 +-1 is +-2 in 4 of 8 -> p = 1/2
    r = M.sign_flip_test(D_HAND, 0, n_permutations=10)
    assert r.exact and r.n_permutations == 8
    assert r.p_gain == pytest.approx(0.25)
    assert math.isnan(r.p_values[0])
    assert r.p_values[1:] == pytest.approx((1.0, 0.5))
    # Holm over (1.0, 0.5): 0.5 * 2 = 1.0, then max(1.0, 1.0 * 1) = 1.0
    assert r.p_holm[1:] == pytest.approx((1.0, 1.0))
    # all three positive: only +++ and --- are as extreme -> 2/8
    assert M.sign_flip_test(np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0]]), 0).p_values[1] == 0.25


def test_sign_flip_monte_carlo():
    n = 20  # 2^20 patterns > 999 draws -> Monte Carlo with the +1 correction
    strong = np.arange(1.0, n + 1)  # all positive, distinct: only +-all-same-sign is as extreme
    balanced = np.tile([1.0, -1.0], n // 2)  # sum 0: every flip is as extreme -> p = 1000/1000
    D = np.column_stack([strong, strong, balanced])
    a = M.sign_flip_test(D, 0, n_permutations=999, seed=1)
    b = M.sign_flip_test(D, 0, n_permutations=999, seed=1)
    np.testing.assert_equal(a.p_values, b.p_values)  # NaN-aware equality
    assert not a.exact and a.n_permutations == 999
    # a random pattern is all-same-sign with probability 2 / 2^20: none among 999 draws
    assert a.p_values[1] == pytest.approx(1 / 1000)
    assert a.p_values[2] == 1.0
    assert M.sign_flip_test(D, 0, n_permutations=0).p_values == pytest.approx(
        (np.nan,) * 3, nan_ok=True
    )


def test_holm_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 * 0.01 = 0.03, 2 * 0.03 = 0.06, max(0.06, 1 * 0.04) = 0.06
    np.testing.assert_allclose(M.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    # capped at 1; NaN entries are not part of the family (m = 2 here)
    out = M.holm([0.5, np.nan, 0.6])
    np.testing.assert_allclose(out[[0, 2]], [1.0, 1.0])
    assert math.isnan(out[1])
    np.testing.assert_allclose(M.holm([0.01, np.nan, 0.02]), [0.02, np.nan, 0.02])
    assert M.holm([]).shape == (0,)
