"""Hand-computed checks of the inference building blocks (Fieller, BH, d_z, nulls, Hotelling)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tests.schwartz import BASIC_VALUES, SCHWARTZ, angle
from vat import metrics as M
from vat.metrics.inference import _hotelling_equal_means
from vat.metrics.resampling import resample_weights


def test_fieller_hand():
    # a = 2, b = 4, var_a = var_b = 1, cov 0, crit 2: A = 16 - 4 = 12, B = 8, C = 4 - 4 = 0,
    # B^2 - AC = 64 -> theta in [(8 - 8) / 12, (8 + 8) / 12] = [0, 4/3]
    assert M.fieller(2.0, 4.0, 1.0, 1.0, 0.0, 2.0) == pytest.approx((0.0, 4 / 3))
    # the denominator's own interval 1 +- 2 covers 0: A = 1 - 4 < 0 -> unbounded
    assert M.fieller(2.0, 1.0, 1.0, 1.0, 0.0, 2.0) == (-math.inf, math.inf)
    # no noise: the ratio itself
    assert M.fieller(3.0, 2.0, 0.0, 0.0, 0.0, 2.0) == pytest.approx((1.5, 1.5))
    assert all(math.isnan(x) for x in M.fieller(math.nan, 1.0, 1.0, 1.0, 0.0, 2.0))


def test_benjamini_hochberg_hand():
    # sorted 0.01, 0.03, 0.04, 0.2 (m = 4): m p / i = 0.04, 0.06, 0.0533, 0.2; running min from
    # the top: 0.04, 0.0533, 0.0533, 0.2; NaN stays NaN and does not count in m
    p = [0.01, 0.04, np.nan, 0.03, 0.2]
    out = M.benjamini_hochberg(p)
    np.testing.assert_allclose(out, [0.04, 0.16 / 3, np.nan, 0.16 / 3, 0.2])


def test_d_z_interval_puts_t_at_the_tails():
    t = np.array([0.5, 2.0, -3.0, 150.0])
    n = np.array([14.0, 14.0, 80.0, 80.0])
    lo, hi = M.d_z_interval(t, n, 0.95)
    # exact: nct(df = n - 1, nc = d sqrt(n)) puts the observed t at 2.5 % above / below
    ex = slice(0, 3)
    np.testing.assert_allclose(stats.nct.sf(t[ex], n[ex] - 1, lo[ex] * np.sqrt(n[ex])), 0.025)
    np.testing.assert_allclose(stats.nct.cdf(t[ex], n[ex] - 1, hi[ex] * np.sqrt(n[ex])), 0.025)
    # |t| > 100: the large-sample interval d +- 1.96 sqrt(1 / n + d^2 / (2 (n - 1)))
    d = 150 / math.sqrt(80)
    half = stats.norm.ppf(0.975) * math.sqrt(1 / 80 + d * d / 158)
    assert (lo[3], hi[3]) == pytest.approx((d - half, d + half))


def test_correlation_p_values_match_scipy():
    rng = np.random.default_rng(0)
    D = rng.normal(size=(20, 4))
    D[:, 1] += D[:, 0]
    R = M.coupling(D)
    p = M.correlation_p_values(R, M.overlap(D), "spearman")
    assert p[0, 1] == pytest.approx(stats.spearmanr(D[:, 0], D[:, 1]).pvalue)
    assert math.isnan(p[2, 2])


def test_min_overlap_guard():
    D = np.arange(30.0).reshape(10, 3) ** 1.5
    D[:7, 2] = np.nan  # column 2 shares only 3 scenes with the others
    R = M.coupling(D, min_overlap=8)
    assert R[0, 1] == pytest.approx(1.0)
    assert np.isnan(R[0, 2]) and np.isnan(R[2, 2])
    assert M.coupling(D, min_overlap=3)[0, 2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="min_overlap"):
        M.coupling(D, min_overlap=-1)


def test_mantel_finds_a_perfect_circumplex():
    ang = np.array([angle(v, radians=True) for v in BASIC_VALUES])
    R = np.round(np.cos(ang[:, None] - ang[None, :]), 12)  # exact ties where slots repeat
    assert M.circumplex_consistency(R, SCHWARTZ.angles(BASIC_VALUES)) == pytest.approx(1.0)
    res = M.mantel_circumplex(R, SCHWARTZ.angles(BASIC_VALUES), n_permutations=500, seed=0)
    assert res.p_value == pytest.approx(1 / 501, abs=2e-3) and abs(res.null_mean) < 0.1


def test_hotelling_equal_means():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    assert _hotelling_equal_means(X) > 0.01  # equal means
    X[:, 0] += 2.0
    assert _hotelling_equal_means(X) < 1e-6
    assert math.isnan(_hotelling_equal_means(X[:4]))  # n <= q + 1: not testable


def test_unbounded_tax_interval_when_the_gain_covers_zero():
    rng = np.random.default_rng(2)
    D = rng.normal(size=(14, 10))  # the target did not move
    W, _ = resample_weights(14, 300, rng)
    fo = M.first_order_inference(D, 8, W, ci=0.95, eps=1e-3)
    if fo.gain_bounded:  # (depends on the draw; this seed gives a gain interval covering 0)
        pytest.fail("expected the gain's interval to cover 0 for this seed")
    assert np.isinf(fo.tau_ci[0]).all() and np.isinf(fo.gnd_ci[1])


def test_eps_in_pre_state_sd_units():
    pre = np.column_stack([np.linspace(0, 2, 11)] * 10)  # each column's scene SD is 0.6633
    sd = np.std(np.linspace(0, 2, 11), ddof=1)
    assert M.eps_threshold(pre, 0.01, "pre_sd") == (pytest.approx(0.01 * sd), "pre_sd")
    assert M.eps_threshold(pre, 0.01, "score") == (0.01, "score")
    assert M.eps_threshold(np.ones((5, 10)), 0.01, "pre_sd") == (0.01, "score")  # no spread
    with pytest.raises(ValueError, match="eps_units"):
        M.eps_threshold(pre, 0.01, "nats")


def test_vat_json_keeps_infinite_limits():
    rng = np.random.default_rng(2)
    pre = rng.normal(size=(14, 10))
    post = pre + rng.normal(size=(14, 10))
    r = M.compute_vat(pre, post, "benevolence", SCHWARTZ, n_bootstrap=200, n_permutations=100)
    assert not r.gain_bounded and r.intervals["tau.power"] == (-math.inf, math.inf)
    d = r.to_dict()
    assert d["intervals"]["tau.power"] == ["-inf", "inf"]
    back = M.VATResult.from_dict(d)
    assert back.intervals["tau.power"] == (-math.inf, math.inf)
    # an older vat.json without the new fields still loads
    old = {k: v for k, v in d.items() if k not in ("p_uneven", "R_lo", "hub_top_freq")}
    o = M.VATResult.from_dict(old)
    assert math.isnan(o.p_uneven) and o.R_lo == () and o.hub_top_freq == {}


def test_batched_pairwise_spearman_equals_the_grouped_one():
    # the permutation null's vectorised pairwise-complete Spearman must agree with `coupling`'s
    from vat.metrics.coupling import _coupling_all
    from vat.metrics.nulls import _spearman_pairwise_batch

    rng = np.random.default_rng(4)
    X = rng.integers(0, 5, size=(4, 15, 6)).astype(float)  # ties included
    X[rng.random(X.shape) < 0.3] = np.nan
    X[1, :, 2] = 1.0  # a column without spread: NaN row and column
    got = _spearman_pairwise_batch(X)
    for k in range(len(X)):
        np.testing.assert_allclose(got[k], _coupling_all(X[k], "spearman"), atol=1e-12)


def test_unevenness_bootstrap_where_hotelling_cannot_run():
    # 6 scenes, 9 non-target values: Hotelling needs more scenes than values, the bootstrap runs
    rng = np.random.default_rng(5)
    W, _ = resample_weights(6, 400, rng)
    even = rng.normal(size=(6, 10)) + 0.5
    uneven = even.copy()
    uneven[:, :4] += 6.0
    p_even = M.first_order_inference(even, 8, W, ci=0.95, eps=1e-3).p_uneven
    p_uneven = M.first_order_inference(uneven, 8, W, ci=0.95, eps=1e-3).p_uneven
    assert 0.05 < p_even <= 1.0 and p_uneven < 0.01
