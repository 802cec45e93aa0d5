"""`vat.metrics.first_order.stability`: the profile by hand and its edge cases, and its inference:
trend test, sign flips beyond noise, the noise reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vat.metrics import stability


def test_trend_p_is_the_exact_permutation_p():
    s = stability([1, 2, 3, 4, 5], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert s.p_monotonicity == pytest.approx(2 / 120)  # only the two monotone orderings
    s3 = stability([1, 2, 3], [0.1, 0.3, 0.2])
    assert s3.p_monotonicity == pytest.approx(1.0)  # every ordering of 3 has |rho| >= 0.5
    g = [0.3, 0.1, 0.4, 0.2, 0.6, 0.5]
    ref = stats.permutation_test(
        (np.arange(6.0),), lambda x: stats.spearmanr(x, g).statistic,
        permutation_type="pairings", n_resamples=10**6,
    ).pvalue  # fmt: skip
    assert stability(range(6), g).p_monotonicity == pytest.approx(ref)


def test_sign_flips_beyond_noise_by_hand():
    gains = [0.2, -0.1, 0.3, -0.4]
    ci = [(0.1, 0.3), (-0.3, 0.1), (0.2, 0.4), (-0.5, -0.3)]
    s = stability([1, 2, 3, 4], gains, gain_ci=ci)
    assert s.sign_flips == 3
    # point 2's interval covers 0: only the flip 3 -> 4 is between two sure signs
    assert s.sign_flips_beyond_noise == 1


def test_volatility_noise_by_hand_and_on_a_flat_noisy_trajectory():
    T = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 4.0], [1.0, 3.0, 4.0]])  # 3 points x 3 scenes
    s = stability([1, 2, 3], T.mean(1), target_shifts=T)
    d = np.diff(T, axis=0)
    expected = np.sqrt(np.mean(d.var(axis=1, ddof=1) / 3))
    assert s.volatility_noise == pytest.approx(expected)
    # a true trajectory that does not move: volatility and its noise reference agree on average
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(300):
        scene = rng.normal(0, 0.3, 40)  # shared by every point (same scenes)
        T = 0.2 + scene + rng.normal(0, 0.1, (6, 40))
        p = stability(range(6), T.mean(1), target_shifts=T)
        ratios.append(p.volatility / p.volatility_noise)
    assert 0.75 < np.mean(ratios) < 1.05  # volatility is a ddof=0 std of 5 steps: a bit below
    with pytest.raises(ValueError, match="target_shifts has 2 points"):
        stability([1, 2, 3], [0, 0, 0], target_shifts=np.zeros((2, 4)))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_stability_hand():
    # sorted by strength: G = [0.1, 0.3, -0.2, 0.4]
    # ranks of G [2, 3, 1, 4] vs [1, 2, 3, 4]: sum d^2 = 1 + 1 + 4 + 0 = 6 -> rho = 1 - 36/60 = 0.4
    # signs + + - +: 2 flips; steps 0.2, -0.5, 0.6 (mean 0.1) -> std = sqrt((.01+.36+.25)/3)
    p = stability([2, 0, 3, 1], [-0.2, 0.1, 0.4, 0.3], [3.0, 1.0, 4.0, 2.0], None)
    assert p.strengths == (0.0, 1.0, 2.0, 3.0)
    assert p.gains == pytest.approx((0.1, 0.3, -0.2, 0.4))
    assert p.gnds == (1.0, 2.0, 3.0, 4.0)
    assert all(math.isnan(x) for x in p.nvats)
    assert p.monotonicity == pytest.approx(0.4)
    assert p.sign_flips == 2
    assert p.volatility == pytest.approx(math.sqrt(0.62 / 3))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_stability_edge_cases():
    p = stability([1, 2, 3], [0.1, 0.2, 0.3], None, None)
    assert p.monotonicity == pytest.approx(1.0) and p.sign_flips == 0
    assert p.volatility == pytest.approx(0.0, abs=1e-15)  # steady steps of 0.1
    one = stability([1], [0.5], [0.1], [0.2])
    assert math.isnan(one.monotonicity) and math.isnan(one.volatility) and one.sign_flips == 0
    # zeros are skipped when counting sign flips, NaN gains are dropped
    assert stability([0, 1, 2, 3], [0.1, 0.0, np.nan, -0.1], None, None).sign_flips == 1
    with pytest.raises(ValueError, match="points"):
        stability([0, 1], [0.1], None, None)
