"""Unit tests for `vat.metrics` against numbers worked out by hand (in the comments)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from vat import metrics as M
from vat.values import (
    BASIC_VALUES,
    MICRO,
    MICRO_VALUES,
    UnknownValueError,
    angle,
    circumplex_distance,
)

# The worked example used throughout (3 scenes x 3 values, target = column 0).
S_PRE = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
S_POST = np.array([[1.0, 0.5, -1.0], [2.0, 0.0, 1.0], [4.0, 1.0, 0.0]])
# D = S_post - S_pre:
D_HAND = np.array([[1.0, 0.5, -1.0], [1.0, -1.0, 0.0], [2.0, 1.0, -1.0]])
SQRT3_2 = math.sqrt(3) / 2


@pytest.fixture(autouse=True)
def _runtime_warnings_are_errors():
    # The module promises NaN, never RuntimeWarning spam: make any leak fail the test.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# --------------------------------------------------------------------------------------------------
# first order


def test_shift_gain_tax_gnd_hand_example():
    D = M.shift(S_PRE, S_POST)
    np.testing.assert_array_equal(D, D_HAND)
    # column means: m0 = (1 + 1 + 2) / 3 = 4/3, m1 = (0.5 - 1 + 1) / 3 = 1/6, m2 = (-1 + 0 - 1) / 3 = -2/3
    np.testing.assert_allclose(M.mean_shift(D), [4 / 3, 1 / 6, -2 / 3])
    assert M.gain(D, 0) == pytest.approx(4 / 3)
    # tau_1 = (1/6) / (4/3) = 1/8, tau_2 = (-2/3) / (4/3) = -1/2, tau_0 undefined
    tau = M.tax(D, 0)
    assert math.isnan(tau[0])
    np.testing.assert_allclose(tau[1:], [0.125, -0.5])
    r = M.gnd(D, 0)
    # l1 = mean(1/6, 2/3) / (4/3) = (5/12) * (3/4) = 5/16
    assert r.l1 == pytest.approx(5 / 16)
    # l2 = sqrt((1/36 + 16/36) / 2) / (4/3) = sqrt(17/72) * 3/4 = sqrt(17/128)
    assert r.l2 == pytest.approx(math.sqrt(17 / 128))
    # collateral = (min(0, 1/6) + min(0, -2/3)) / (4/3) = -1/2
    assert r.collateral == pytest.approx(-0.5)
    assert r.gain == pytest.approx(4 / 3)
    assert r.gain_too_small is False


def test_negative_gain_normalises_by_absolute_value():
    # G = mean(-2, -2) = -2; m1 = (1 - 0.5) / 2 = 0.25 -> tau_1 = 0.25 / 2 = 0.125 (sign of m1)
    D = np.array([[-2.0, 1.0], [-2.0, -0.5]])
    assert M.gain(D, 0) == -2.0
    assert M.tax(D, 0)[1] == pytest.approx(0.125)
    r = M.gnd(D, 0)
    assert (r.l1, r.l2, r.collateral) == pytest.approx((0.125, 0.125, 0.0))


def test_nan_cells_are_skipped_in_means():
    # column 0: mean(1, 3) = 2 (NaN scene skipped); column 1: mean(-1, 1, 0) = 0
    D = np.array([[1.0, -1.0], [np.nan, 1.0], [3.0, 0.0]])
    assert M.gain(D, 0) == 2.0
    assert M.tax(D, 0)[1] == 0.0
    # a value with no data at all is left out of GND; with nothing left, GND is NaN
    D2 = np.array([[1.0, np.nan], [1.0, np.nan]])
    r = M.gnd(D2, 0)
    assert r.gain == 1.0 and not r.gain_too_small
    assert math.isnan(r.l1) and math.isnan(r.collateral)


@pytest.mark.parametrize(
    "target_col",
    [
        [1e-4, -1e-4, 2e-4],  # G = 6.7e-5 < eps
        [0.0, 0.0, 0.0],  # G = 0: would be a division by zero
        [np.nan, np.nan, np.nan],  # target not measured at all
    ],
)
def test_gain_below_eps_gives_nan_and_flag(target_col):
    D = D_HAND.copy()
    D[:, 0] = target_col
    tau = M.tax(D, 0, eps=1e-3)
    assert np.isnan(tau).all()
    assert not np.isinf(tau).any()
    r = M.gnd(D, 0, eps=1e-3)
    assert r.gain_too_small is True
    assert math.isnan(r.l1) and math.isnan(r.l2) and math.isnan(r.collateral)


def test_eps_is_the_threshold():
    D = np.array([[0.002, 1.0], [0.002, 1.0]])  # G = 0.002
    assert not M.gnd(D, 0, eps=1e-3).gain_too_small
    assert M.gnd(D, 0, eps=1e-2).gain_too_small


def test_input_validation():
    with pytest.raises(ValueError, match="same shape"):
        M.shift(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="2-D"):
        M.shift(np.zeros(3), np.zeros(3))
    with pytest.raises(IndexError):
        M.gain(D_HAND, 3)
    with pytest.raises(ValueError, match="coupling method"):
        M.coupling(D_HAND, method="pearson", min_overlap=2)


# --------------------------------------------------------------------------------------------------
# coupling and its summaries


def test_coupling_spearman_hand_example():
    # ranks (average for ties): col0 [1, 1, 2] -> [1.5, 1.5, 3]; col1 [0.5, -1, 1] -> [2, 1, 3];
    # col2 [-1, 0, -1] -> [1.5, 3, 1.5]. Centred: r0 = [-.5, -.5, 1], r1 = [0, -1, 1],
    # r2 = [-.5, 1, -.5]; sums of squares 1.5, 2, 1.5.
    # R01 = 1.5 / sqrt(1.5 * 2) = sqrt(3)/2; R02 = -0.75 / 1.5 = -1/2; R12 = -1.5 / sqrt(3) = -sqrt(3)/2
    R = M.coupling(D_HAND, min_overlap=2)
    expected = np.array([[1, SQRT3_2, -0.5], [SQRT3_2, 1, -SQRT3_2], [-0.5, -SQRT3_2, 1]])
    np.testing.assert_allclose(R, expected, atol=1e-12)


def test_coupling_kendall_hand_example():
    # pair signs sgn(x_i - x_j) for (i, j) = (0,1), (0,2), (1,2):
    # col0 [0, -1, -1], col1 [1, -1, -1], col2 [-1, 0, 1]
    # tau_b(0,1) = 2 / sqrt(2 * 3); tau_b(0,2) = -1 / sqrt(2 * 2); tau_b(1,2) = -2 / sqrt(3 * 2)
    R = M.coupling(D_HAND, method="kendall", min_overlap=2)
    k = 2 / math.sqrt(6)
    expected = np.array([[1, k, -0.5], [k, 1, -k], [-0.5, -k, 1]])
    np.testing.assert_allclose(R, expected, atol=1e-12)


def test_coupling_monotone_and_reversed():
    x = np.array([0.1, 0.5, 0.7, 2.0, 3.0])
    D = np.column_stack([x, x**3, -x])  # same order, reversed order
    for method in ("spearman", "kendall"):
        R = M.coupling(D, method=method, min_overlap=2)
        np.testing.assert_allclose(R, [[1, 1, -1], [1, 1, -1], [-1, -1, 1]], atol=1e-12)


def test_coupling_matches_scipy_pairwise_with_missing_cells():
    rng = np.random.default_rng(3)
    D = rng.integers(0, 5, size=(25, 4)).astype(float)  # integer data: plenty of ties
    D[rng.random(D.shape) < 0.2] = np.nan
    for method, fn in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        R = M.coupling(D, method=method, min_overlap=2)
        for u in range(4):
            for v in range(4):
                ref = fn(D[:, u], D[:, v], nan_policy="omit")[0]
                assert R[u, v] == pytest.approx(ref, abs=1e-12)


def test_zero_variance_column_gives_nan_not_a_crash():
    D = np.array([[1.0, 2.0, 5.0], [2.0, 2.0, 4.0], [3.0, 2.0, 1.0], [4.0, 2.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("spearman", "kendall"):
            R = M.coupling(D, method=method, min_overlap=2)
            assert np.isnan(R[1, :]).all() and np.isnan(R[:, 1]).all()
            assert R[0, 0] == 1.0 and R[2, 2] == 1.0
            assert R[0, 2] == pytest.approx(-1.0)
            # the summaries skip the NaN entries: only R02 = R20 = -1 is left
            assert M.nvat_offdiag(R) == pytest.approx(1.0)
            assert M.hubs(R, ["a", "b", "c"], k=3).top == ("a", "c")
            assert math.isnan(M.hubs(R, ["a", "b", "c"]).strength["b"])
    # a column with a single scene of data is just as undefined
    D2 = D.copy()
    D2[1:, 2] = np.nan
    assert np.isnan(M.coupling(D2, min_overlap=2)[2]).all()


HAND_R = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, -0.8], [0.0, -0.8, 1.0]])


def test_nvat_offdiag_hand():
    # off-diagonal squares: 0.36, 0.64, 0 (each twice) -> mean 1/3 -> sqrt(1/3)
    assert M.nvat_offdiag(HAND_R) == pytest.approx(math.sqrt(1 / 3))
    assert M.nvat_offdiag(np.eye(4)) == 0.0
    # NaN entries are ignored: finite off-diagonal squares 0.36, 0.64 -> sqrt(0.5)
    R = HAND_R.copy()
    R[0, 2] = R[2, 0] = np.nan
    assert M.nvat_offdiag(R) == pytest.approx(math.sqrt(0.5))
    assert math.isnan(M.nvat_offdiag(np.full((3, 3), np.nan)))


def test_nvat_paper_includes_diagonal_so_is_at_least_one():
    # ||R||_F^2 = 3 (diagonal) + 2 * (0.36 + 0.64 + 0) = 5 -> sqrt(5 / 3)
    assert M.nvat_paper(HAND_R) == pytest.approx(math.sqrt(5 / 3))
    assert M.nvat_paper(np.eye(10)) == 1.0
    # sqrt(1 + (|V| - 1) nvat_offdiag^2) identity
    assert M.nvat_paper(HAND_R) == pytest.approx(math.sqrt(1 + 2 * M.nvat_offdiag(HAND_R) ** 2))
    assert M.nvat_paper(M.coupling(D_HAND, min_overlap=2)) >= 1.0


def test_hubs_hand():
    # h_a = |0.6| + |0| = 0.6, h_b = 0.6 + 0.8 = 1.4, h_c = 0 + 0.8 = 0.8
    h = M.hubs(HAND_R, ["a", "b", "c"], k=2)
    assert h.strength == pytest.approx({"a": 0.6, "b": 1.4, "c": 0.8})
    assert h.top == ("b", "c")
    # the worked example: h0 = h2 = sqrt(3)/2 + 1/2, h1 = sqrt(3); ties keep column order
    h = M.hubs(M.coupling(D_HAND, min_overlap=2), ["x", "y", "z"], k=3)
    assert h.top == ("y", "x", "z")
    assert h.strength["y"] == pytest.approx(math.sqrt(3))


def test_hubs_default_names_come_from_taxonomy():
    R = np.eye(10)
    R[0, 9] = R[9, 0] = 0.5
    h = M.hubs(R, k=2)
    assert h.top == ("self_direction", "universalism")
    with pytest.raises(ValueError, match="values must be given"):
        M.hubs(np.eye(3))


def _cos_matrix(names):
    # cos of the angle between two values from the integer slot distance (40 degrees a slot), so
    # that pairs the same number of slots apart tie exactly
    basic = [n if n in BASIC_VALUES else MICRO[n].value for n in names]
    d = np.array([[circumplex_distance(u, v) for v in basic] for u in basic])
    return np.cos(2 * np.pi * d / 9)


def test_circumplex_consistency_perfect_and_reversed():
    R = _cos_matrix(BASIC_VALUES)
    # spot-check the construction: Conformity and Tradition share a slot -> cos 0 = 1
    assert R[BASIC_VALUES.index("conformity"), BASIC_VALUES.index("tradition")] == 1.0
    assert angle("power", radians=True) == pytest.approx(4 * 2 * math.pi / 9)
    assert M.circumplex_consistency(R, BASIC_VALUES) == pytest.approx(1.0)
    assert M.circumplex_consistency(-R) == pytest.approx(-1.0)
    # opposite of the circumplex on half the pairs only: still positive but below 1
    noisy = R.copy()
    noisy[0, 1:5] = noisy[1:5, 0] = -noisy[0, 1:5]
    assert 0 < M.circumplex_consistency(noisy) < 1


def test_circumplex_consistency_micro_uses_basic_angles():
    R = _cos_matrix(MICRO_VALUES)
    assert R[0, 1] == 1.0  # two self-direction micro-values: same angle
    assert M.circumplex_consistency(R, MICRO_VALUES) == pytest.approx(1.0)
    assert math.isnan(M.circumplex_consistency(np.full((10, 10), np.nan)))


# --------------------------------------------------------------------------------------------------
# uncertainty


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


def test_weighted_spearman_equals_spearman_of_repeated_rows():
    # the bootstrap's shortcut must agree with re-ranking the resampled rows, ties and NaN included
    rng = np.random.default_rng(5)
    D = rng.integers(0, 4, size=(12, 4)).astype(float)
    D[rng.random(D.shape) < 0.15] = np.nan
    W = rng.integers(0, 3, size=(10, 12)).astype(float)
    got = M._coupling_weighted(D, W, "spearman")
    for r in range(10):
        ref = M.coupling(np.repeat(D, W[r].astype(int), axis=0), min_overlap=2)
        np.testing.assert_allclose(got[r], ref, atol=1e-12)


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


# --------------------------------------------------------------------------------------------------
# trajectories and aggregation


def test_stability_hand():
    # sorted by strength: G = [0.1, 0.3, -0.2, 0.4]
    # ranks of G [2, 3, 1, 4] vs [1, 2, 3, 4]: sum d^2 = 1 + 1 + 4 + 0 = 6 -> rho = 1 - 36/60 = 0.4
    # signs + + - +: 2 flips; steps 0.2, -0.5, 0.6 (mean 0.1) -> std = sqrt((.01+.36+.25)/3)
    p = M.stability([2, 0, 3, 1], [-0.2, 0.1, 0.4, 0.3], [3.0, 1.0, 4.0, 2.0], None)
    assert p.strengths == (0.0, 1.0, 2.0, 3.0)
    assert p.gains == pytest.approx((0.1, 0.3, -0.2, 0.4))
    assert p.gnds == (1.0, 2.0, 3.0, 4.0)
    assert all(math.isnan(x) for x in p.nvats)
    assert p.monotonicity == pytest.approx(0.4)
    assert p.sign_flips == 2
    assert p.volatility == pytest.approx(math.sqrt(0.62 / 3))


def test_stability_edge_cases():
    p = M.stability([1, 2, 3], [0.1, 0.2, 0.3], None, None)
    assert p.monotonicity == pytest.approx(1.0) and p.sign_flips == 0
    assert p.volatility == pytest.approx(0.0, abs=1e-15)  # steady steps of 0.1
    one = M.stability([1], [0.5], [0.1], [0.2])
    assert math.isnan(one.monotonicity) and math.isnan(one.volatility) and one.sign_flips == 0
    # zeros are skipped when counting sign flips, NaN gains are dropped
    assert M.stability([0, 1, 2, 3], [0.1, 0.0, np.nan, -0.1], None, None).sign_flips == 1
    with pytest.raises(ValueError, match="points"):
        M.stability([0, 1], [0.1], None, None)


def test_micro_to_basic_state_hand():
    # hedonism = mean(pleasure, enjoying_life): scene 0 (1 + 3) / 2 = 2, scene 1 only 2 -> 2
    # stimulation = daring: [5, NaN]; every other basic value has no column -> NaN
    S = np.array([[1.0, 3.0, 5.0], [np.nan, 2.0, np.nan]])
    out = M.micro_to_basic_state(S, ["Pleasure", "enjoying life", "daring"])
    assert out.shape == (2, 10)
    h, s = BASIC_VALUES.index("hedonism"), BASIC_VALUES.index("stimulation")
    np.testing.assert_array_equal(out[:, h], [2.0, 2.0])
    np.testing.assert_array_equal(out[:, s], [5.0, np.nan])
    assert np.isnan(np.delete(out, [h, s], axis=1)).all()


def test_micro_to_basic_state_equal_weight_per_micro_value():
    # full 56 columns, each column = its position within its basic value (0, 1, 2, ...):
    # the basic value with k micro-values averages to (k - 1) / 2 (e.g. hedonism 0.5, power 2)
    counts: dict[str, int] = {}
    row = []
    for m in MICRO_VALUES:
        v = MICRO[m].value
        row.append(counts.get(v, 0))
        counts[v] = counts.get(v, 0) + 1
    out = M.micro_to_basic_state(np.array([row], dtype=float))
    assert out[0, BASIC_VALUES.index("hedonism")] == 0.5  # 2 micro-values
    assert out[0, BASIC_VALUES.index("power")] == 2.0  # 5
    assert out[0, BASIC_VALUES.index("universalism")] == 4.0  # 9


# --------------------------------------------------------------------------------------------------
# compute_vat and VATResult


def _basic_states(seed=0, n=30):
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(n, 10))
    D = 0.3 * rng.normal(size=(n, 10))
    D[:, BASIC_VALUES.index("benevolence")] += 1.0
    return pre, pre + D


def test_compute_vat_matches_the_pieces():
    pre, post = _basic_states()
    r = M.compute_vat(pre, post, "Benevolence", n_bootstrap=50, n_permutations=200, seed=3)
    D = M.shift(pre, post)
    t = BASIC_VALUES.index("benevolence")
    assert r.target == "benevolence" and r.level == "basic" and r.n_scenes == 30
    assert r.gain == pytest.approx(M.gain(D, t))
    assert set(r.tau) == set(BASIC_VALUES) - {"benevolence"}
    assert r.tau["power"] == pytest.approx(M.tax(D, t)[BASIC_VALUES.index("power")])
    assert r.gnd_l1 == pytest.approx(M.gnd(D, t).l1)
    np.testing.assert_allclose(np.array(r.R), M.coupling(D, min_overlap=2))
    assert r.nvat_offdiag == pytest.approx(M.nvat_offdiag(M.coupling(D, min_overlap=2)))
    assert len(r.hubs) == 3
    assert set(r.intervals) == (
        {"gain", "gnd_l1", "nvat_offdiag"}
        | {f"tau.{v}" for v in BASIC_VALUES if v != "benevolence"}
        | {f"{k}.{v}" for k in ("shift", "d_z") for v in BASIC_VALUES}
    )
    lo, hi = r.intervals["gain"]
    assert lo <= r.gain <= hi
    assert r.intervals["shift.benevolence"] == r.intervals["gain"]
    assert r.p_gain == pytest.approx(1 / 51)  # a gain of ~3 sd x sqrt(30) is never matched by t*
    assert r.gain_bounded and r.gain_sign_flip_share == 0.0
    assert r.test_method == "bootstrap-t" and r.n_permutations == 200
    assert set(r.p_holm) == set(r.tau)
    assert all(r.p_holm[v] >= r.p_values[v] for v in r.tau)


def test_compute_vat_names_and_levels():
    pre, post = _basic_states()
    with pytest.raises(UnknownValueError, match="self_direction"):
        M.compute_vat(pre, post, "kindness", n_bootstrap=0, n_permutations=0)
    with pytest.raises(ValueError, match="columns"):
        M.compute_vat(pre[:, :3], post[:, :3], "power", n_bootstrap=0, n_permutations=0)
    three = ["Power", "achievement", "HEDONISM"]
    r = M.compute_vat(pre[:, :3], post[:, :3], "power", three, n_bootstrap=0, n_permutations=0)
    assert r.values == ("power", "achievement", "hedonism")
    with pytest.raises(ValueError, match="not among"):
        M.compute_vat(pre[:, :3], post[:, :3], "security", three, n_bootstrap=0, n_permutations=0)
    # micro level: 56 columns, target is a micro-value
    rng = np.random.default_rng(1)
    pre_m = rng.normal(size=(12, 56))
    post_m = pre_m + rng.normal(size=(12, 56))
    r = M.compute_vat(pre_m, post_m, "Helpful", MICRO_VALUES, n_bootstrap=20, n_permutations=50)
    assert r.level == "micro" and r.target == "helpful" and len(r.R) == 56
    assert -1 <= r.circumplex_consistency <= 1


def test_compute_vat_skips_and_json_round_trip_with_nan_as_null():
    pre, post = _basic_states()
    post[:, BASIC_VALUES.index("power")] = pre[:, BASIC_VALUES.index("power")]  # G = 0 exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = M.compute_vat(pre, post, "power", n_bootstrap=0, n_permutations=0)
    assert r.gain == 0.0 and r.gain_too_small
    assert math.isnan(r.gnd_l1) and all(math.isnan(x) for x in r.tau.values())
    # every resampling interval is NaN without resamples (d_z's interval is analytic)
    resampled = {k: v for k, v in r.intervals.items() if not k.startswith("d_z.")}
    assert all(math.isnan(x) for pair in resampled.values() for x in pair)
    assert all(math.isnan(x) for x in r.p_values.values()) and math.isnan(r.p_gain)
    # the target column has no variance -> its row of R is NaN as well
    assert math.isnan(r.R[BASIC_VALUES.index("power")][0])

    text = r.to_json()

    def _reject(const):  # strict JSON: no NaN / Infinity tokens
        raise AssertionError(f"non-standard JSON constant {const}")

    data = json.loads(text, parse_constant=_reject)
    assert data["gnd_l1"] is None and data["intervals"]["gain"] == [None, None]
    assert data["gain_too_small"] is True
    back = M.VATResult.from_json(text)
    assert math.isnan(back.gnd_l1) and isinstance(back.R, tuple)
    assert back.to_dict() == r.to_dict()
    assert M.VATResult.from_dict(r.to_dict()).to_json() == text


def test_recovers_planted_structure():
    """Synthetic states with known shifts and a shared factor: the metrics find what was planted."""
    rng = np.random.default_rng(0)
    values = list(BASIC_VALUES)
    n = 60
    planted = dict.fromkeys(values, 0.0)
    planted.update(benevolence=1.0, universalism=0.5, power=-0.4, achievement=-0.3)
    S_pre = rng.normal(0, 1, (n, 10))
    D = np.array([planted[v] for v in values]) + rng.normal(0, 0.2, (n, 10))
    z = rng.normal(0, 1, n)  # one latent factor moves three values together: they become the hubs
    for v in ("power", "achievement", "security"):
        D[:, values.index(v)] += 0.8 * z
    res = M.compute_vat(
        S_pre, S_pre + D, "benevolence", n_bootstrap=500, n_permutations=2000, seed=0
    )
    lo, hi = res.intervals["gain"]
    assert lo < 1.0 < hi and abs(res.gain - 1.0) < 0.1
    assert res.tau["universalism"] == pytest.approx(0.5, abs=0.1)
    assert res.tau["power"] < 0 and res.tau["achievement"] < 0
    assert res.p_holm["universalism"] < 0.05
    for v in ("stimulation", "hedonism", "conformity", "tradition"):
        lo, hi = res.intervals[f"tau.{v}"]
        assert lo < 0 < hi, v  # nothing planted: the interval covers zero
    assert set(res.hubs) == {"power", "achievement", "security"}
    expected_gnd = (0.5 + 0.4 + 0.3) / 9  # mean |shift| over the 9 non-target values / |G| (G ~ 1)
    assert res.gnd_l1 == pytest.approx(expected_gnd, abs=0.05)
    lo, hi = res.intervals["gnd_l1"]
    assert lo <= expected_gnd <= hi and res.p_drift < 0.05
    assert res.p_uneven < 0.05  # planted shifts differ across values
    # the shared factor is coupling above the noise floor, found by the permutation null
    assert res.p_nvat < 0.05 and res.nvat_offdiag_excess > 0
    assert res.nvat_offdiag_excess < res.nvat_offdiag  # the noise floor is taken out
    pa, ps = values.index("power"), values.index("security")
    assert res.R_p_holm[pa][ps] < 0.05
    assert all(res.hub_top_freq[v] > 0.9 for v in ("power", "achievement", "security"))
