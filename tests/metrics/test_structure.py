"""Structure statistics (`vat.metrics.structure`): hand-computed cases, a cross-check against the
`rthor` package (RTHORR's Python port), and calibration by simulation.

The rthor numbers below were produced with ``rthor==0.2.1`` in a scratch environment
(``rthor.test(R, order=<circular distances of the upper triangle, row-major>)``); the package is
not a dependency of the project.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from vat.metrics.structure import (
    ClusterContrast,
    CosineProfile,
    RthorResult,
    circular_distance,
    cluster_contrast,
    cosine_profile,
    rthor,
)

# Schwartz's 10 values on 9 slots (conformity and tradition share slot 6)
SCHWARTZ_SLOTS = [0, 1, 2, 3, 4, 5, 6, 6, 7, 8]
NAN = float("nan")


def sym(k: int, upper: list[float]) -> np.ndarray:
    """Symmetric matrix with unit diagonal from its upper triangle (row-major)."""
    R = np.eye(k)
    i, j = np.triu_indices(k, 1)
    R[i, j] = R[j, i] = upper
    return R


# --------------------------------------------------------------------------------------------------
# RTHOR: hand-computed


def test_circular_distance_shared_slot():
    d = circular_distance(SCHWARTZ_SLOTS, 9)
    assert d[6, 7] == 0  # conformity, tradition: one slot
    assert d[0, 9] == 1  # self-direction, universalism: neighbours across the wrap
    assert d[0, 4] == 4 and d[0, 5] == 4  # the farthest a 9-slot circle goes
    assert d[3, 8] == 4  # achievement, benevolence
    np.testing.assert_array_equal(circular_distance(range(4)), [[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]])  # fmt: skip


# 4 variables on 4 slots: (0,1), (1,2), (2,3), (0,3) adjacent (distance 1), (0,2), (1,3) opposite.
# Pairs in row-major order: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); 4 adjacent x 2 opposite = 8
# predictions "adjacent > opposite".


def test_rthor_perfect_circumplex():
    R = sym(4, [0.5, -0.2, 0.5, 0.5, -0.2, 0.5])
    res = rthor(R, [0, 1, 2, 3])
    assert isinstance(res, RthorResult)
    assert (res.predictions, res.agreements, res.violations, res.ties) == (8, 8, 0, 0)
    assert res.ci == 1.0
    # CI = 1 exactly for the relabelings that keep the two opposite pairs opposite: the 8
    # symmetries of the square among 4! = 24 relabelings.
    assert res.exact and res.n_perm == 24
    assert res.p_value == pytest.approx(8 / 24)


def test_rthor_violations_and_ties():
    # opposite pairs 0.45 and 0.1 against adjacent 0.5, 0.35, 0.4, 0.3:
    # 0.45 beats 3 adjacent (3 violations, 1 agreement); 0.1 is below all 4 (4 agreements)
    R = sym(4, [0.5, 0.45, 0.35, 0.4, 0.1, 0.3])
    res = rthor(R, [0, 1, 2, 3])
    assert (res.agreements, res.violations, res.ties) == (5, 3, 0)
    assert res.ci == pytest.approx((5 - 3) / 8)
    # opposite (0,2) = 0.4 ties adjacent (1,2): a tie counts in the denominator only
    R = sym(4, [0.5, 0.4, 0.35, 0.4, 0.1, 0.3])
    res = rthor(R, [0, 1, 2, 3])
    assert (res.agreements, res.violations, res.ties) == (5, 2, 1)
    assert res.ci == pytest.approx((5 - 2) / 8)


def test_rthor_shared_slot_predicts_highest():
    # slots [0, 0, 1] on a circle of 3: (0,1) at distance 0, (0,2) and (1,2) at distance 1
    # -> 2 predictions, r01 > r02 and r01 > r12
    R = sym(3, [0.6, 0.2, 0.7])
    res = rthor(R, [0, 0, 1], 3)
    assert (res.predictions, res.agreements, res.violations) == (2, 1, 1)
    assert res.ci == 0.0


def test_rthor_order_matrix_equals_slots():
    rng = np.random.default_rng(0)
    R = np.corrcoef(rng.standard_normal((20, 6)), rowvar=False)
    a = rthor(R, list(range(6)))
    b = rthor(R, circular_distance(range(6)).astype(float))
    assert a == b


def _brute_force(R: np.ndarray, order: np.ndarray) -> tuple[float, float]:
    """CI and exact p by counting every prediction under every relabeling (NaN: no comparison)."""
    k = R.shape[0]
    i, j = np.triu_indices(k, 1)
    o = order[i, j]

    def ci(Rp):
        r = Rp[i, j]
        ok = np.isfinite(r)
        H = (o[:, None] < o[None, :]) & ok[:, None] & ok[None, :]
        d = r[:, None] - r[None, :]
        return (np.sum(H & (d > 0)) - np.sum(H & (d < 0))) / np.sum(H)

    obs = ci(R)
    null = [ci(R[np.ix_(p, p)]) for p in itertools.permutations(range(k))]
    return obs, float(np.mean(np.array(null) >= obs - 1e-12))


def test_rthor_rank_shortcut_matches_brute_force_with_nan_and_ties():
    rng = np.random.default_rng(3)
    R = np.round(np.corrcoef(rng.standard_normal((12, 6)), rowvar=False), 1)  # ties
    R[0, 3] = R[3, 0] = NAN
    R[2, 5] = R[5, 2] = NAN
    order = circular_distance([0, 1, 2, 3, 4, 4], 5)
    res = rthor(R, order)
    ci, p = _brute_force(R, order)
    assert res.ci == pytest.approx(ci)
    assert res.p_value == pytest.approx(p)
    assert res.ties > 0 and res.predictions == res.agreements + res.violations + res.ties


def test_rthor_undefined_is_nan():
    nan_res = rthor(np.full((5, 5), NAN), range(5))
    assert math.isnan(nan_res.ci) and math.isnan(nan_res.p_value) and nan_res.n_perm == 0
    # 3 variables on a 3-slot circle: every pair adjacent, nothing predicted
    assert math.isnan(rthor(sym(3, [0.1, 0.2, 0.3]), [0, 1, 2]).ci)
    assert math.isnan(rthor(np.eye(2), [0, 1]).ci)
    with pytest.raises(ValueError):
        rthor(np.eye(4), [0, 1, 2])
    with pytest.raises(ValueError):
        rthor(np.eye(4), [0, 1, 2, 5], 4)


def test_rthor_monte_carlo_seeded():
    rng = np.random.default_rng(1)
    R = np.corrcoef(rng.standard_normal((14, 10)), rowvar=False)
    a = rthor(R, SCHWARTZ_SLOTS, 9, n_perm=499, rng=7)
    b = rthor(R, SCHWARTZ_SLOTS, 9, n_perm=499, rng=np.random.default_rng(7))
    assert a == b
    assert not a.exact and a.n_perm == 499
    assert a.predictions == 770  # distances 0..4 over 45 pairs: 1, 10, 10, 10, 14 pairs
    assert 1 / 500 <= a.p_value <= 1.0


# --------------------------------------------------------------------------------------------------
# RTHOR against the rthor package (rthor 0.2.1 == RTHORR): upper triangles of the matrices, the
# slots, and rthor's predictions, agreements, ties, CI and p. CI and counts agree exactly. The p
# agrees exactly on equally spaced circles; elsewhere rthor's p is (count + 1 - [last
# relabeling >= observed]) / k!, because its loop counts the identity twice and skips the last
# (reversing) relabeling, which is a symmetry only of an equally spaced circle.

RTHOR_CASES = {
    "circle6": (
        [-0.358, -0.462, 0.0903, 0.1933, 0.2716, 0.1552, -0.1248, -0.3815, 0.2656,
         -0.2486, -0.342, -0.4034, -0.1103, -0.2116, 0.3596],
        list(range(6)), 6, (72, 50, 0, 0.3888888889, 60 / 720, 60 / 720),
    ),
    "circle8": (
        [0.3363, -0.1562, -0.2387, -0.0534, 0.0173, 0.0242, 0.0542, 0.0806, -0.5379,
         -0.3994, -0.1443, -0.481, -0.0294, 0.1406, -0.2991, -0.4949, -0.5337, -0.2279,
         0.3653, -0.0927, 0.1947, 0.0417, 0.4496, 0.3505, -0.2369, 0.3815, 0.4277, 0.3781],
        list(range(8)), 8, (288, 221, 0, 0.5347222222, 48 / 40320, 48 / 40320),
    ),
    "shared7": (  # 7 variables on 6 slots, the last two sharing one
        [0.2052, -0.3738, -0.5703, 0.3641, -0.0335, 0.3027, 0.0623, -0.3939, -0.1919,
         -0.1068, -0.5162, 0.1569, -0.4752, -0.3043, -0.5731, -0.1943, 0.0377, -0.2503,
         0.2921, 0.3731, 0.2597],
        [0, 1, 2, 3, 4, 5, 5], 6, (148, 124, 0, 0.6756756757, 21 / 5040, 20 / 5040),
    ),
    "ties6": (  # rounded to 0.1: 3 ties among the predictions
        [0.2, -0.2, -0.6, -0.1, -0.3, 0.2, -0.2, -0.4, -0.3, 0.4, -0.4, -0.4, 0.0, 0.3, 0.4],
        list(range(6)), 6, (72, 62, 3, 0.7638888889, 24 / 720, 24 / 720),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RTHOR_CASES))
def test_rthor_matches_rthor_package(name):
    upper, slots, n_slots, (pred, agree, ties, ci, p_ref, p_ours) = RTHOR_CASES[name]
    k = len(slots)
    res = rthor(sym(k, upper), slots, n_slots)
    assert (res.predictions, res.agreements, res.ties) == (pred, agree, ties)
    assert res.ci == pytest.approx(ci, abs=1e-9)
    assert res.n_perm == math.factorial(k)
    assert res.p_value == pytest.approx(p_ours, abs=1e-9)
    # rthor's p differs by at most one relabeling out of k!
    assert abs(res.p_value - p_ref) <= 1 / math.factorial(k) + 1e-12


# --------------------------------------------------------------------------------------------------
# cosine profile (structural summary method)

NINE = np.radians(np.arange(9) * 40.0)  # the 9 slots of Schwartz's circle


def test_cosine_profile_recovers_an_exact_cosine():
    y = 0.3 + 0.8 * np.cos(NINE - np.radians(100.0))
    res = cosine_profile(y, NINE, target_angle=np.radians(120.0), n_perm=199, rng=0)
    assert isinstance(res, CosineProfile)
    assert res.elevation == pytest.approx(0.3)
    assert res.amplitude == pytest.approx(0.8)
    assert res.displacement == pytest.approx(100.0)
    assert res.r_squared == pytest.approx(1.0)
    assert res.target_distance == pytest.approx(20.0)
    assert res.target_loading == pytest.approx(0.8 * np.cos(np.radians(20.0)))
    assert res.n_values == 9 and res.n_perm == 199 and not res.exact


def test_cosine_profile_negative_cosine_and_wraparound():
    res = cosine_profile(-0.5 * np.cos(NINE), NINE, target_angle=0.0, n_perm=99, rng=0)
    assert res.amplitude == pytest.approx(0.5)  # a >= 0: the sign goes into d
    assert res.displacement == pytest.approx(180.0)
    assert res.target_distance == pytest.approx(180.0)
    assert res.target_loading == pytest.approx(-0.5)
    y = np.cos(NINE - np.radians(350.0))
    res = cosine_profile(y, NINE, target_angle=np.radians(10.0), n_perm=99, rng=0)
    assert res.displacement == pytest.approx(350.0)
    assert res.target_distance == pytest.approx(20.0)  # across 0 degrees


def test_cosine_profile_exact_permutation_p():
    # 5 equally spaced angles: a shuffle of an exact cosine is again an exact cosine only for the
    # 10 symmetries of the pentagon, so p = 10 / 5! = 1/12
    th = np.radians(np.arange(5) * 72.0)
    res = cosine_profile(np.cos(th - 0.3), th, n_perm=9999)
    assert res.exact and res.n_perm == 120
    assert res.p_value == pytest.approx(10 / 120)


def test_cosine_profile_mask_and_nan():
    y = 1.0 + 2.0 * np.cos(NINE - np.radians(40.0))
    y_bad = y.copy()
    y_bad[4] = 99.0  # the target's own entry, masked out
    y_bad[6] = NAN
    mask = np.ones(9, dtype=bool)
    mask[4] = False
    res = cosine_profile(y_bad, NINE, mask=mask, n_perm=99, rng=1)
    assert res.n_values == 7
    assert (res.elevation, res.amplitude, res.displacement) == pytest.approx((1.0, 2.0, 40.0))
    assert res.r_squared == pytest.approx(1.0)
    assert math.isnan(res.target_distance) and math.isnan(res.p_target)


def test_cosine_profile_undefined_is_nan():
    res = cosine_profile([1.0, NAN, 2.0, NAN], NINE[:4], n_perm=99, rng=0)
    assert math.isnan(res.amplitude) and math.isnan(res.p_value) and res.n_values == 2
    # three points at only two distinct angles do not determine a cosine
    res = cosine_profile([1.0, 2.0, 3.0], [0.0, 1.0, 1.0], n_perm=99, rng=0)
    assert math.isnan(res.r_squared)
    res = cosine_profile(np.ones(9), NINE, n_perm=99, rng=0)  # constant: no variance to explain
    assert res.elevation == pytest.approx(1.0) and res.amplitude == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(res.displacement) and math.isnan(res.r_squared)
    assert math.isnan(res.p_value)
    with pytest.raises(ValueError):
        cosine_profile([1.0, 2.0], NINE, n_perm=99)


# --------------------------------------------------------------------------------------------------
# cluster contrast


def test_cluster_contrast_hand():
    # clusters {0, 1}, {2, 3}; within: 0.6, 0.4 -> 0.5; between: 0.1, -0.1, 0.0, 0.2 -> 0.05
    R = sym(4, [0.6, 0.1, -0.1, 0.0, 0.2, 0.4])
    res = cluster_contrast(R, ["a", "a", "b", "b"], n_perm=9999)
    assert isinstance(res, ClusterContrast)
    assert (res.within, res.between, res.contrast) == pytest.approx((0.5, 0.05, 0.45))
    assert (res.n_within, res.n_between) == (2, 4)
    # the 3 ways to split 4 into two pairs give 0.45, -0.075, -0.375 (8 of the 4! orders each)
    assert res.exact and res.n_perm == 24
    assert res.p_value == pytest.approx(8 / 24)


def test_cluster_contrast_unclustered_and_nan_excluded():
    R = sym(4, [0.6, 0.1, -0.1, 0.0, 0.2, 0.4])
    big = np.eye(5)
    big[:4, :4] = R
    big[4, :4] = big[:4, 4] = 0.9  # a variable standing apart, coupled to everything
    res = cluster_contrast(big, ["a", "a", "b", "b", None], n_perm=9999)
    assert res.contrast == pytest.approx(0.45) and res.n_between == 4
    big[1, 2] = big[2, 1] = NAN  # between pair (1, 2) = 0.0 drops out: mean of 0.1, -0.1, 0.2
    res = cluster_contrast(big, ["a", "a", "b", "b", None], n_perm=9999)
    assert res.between == pytest.approx(0.2 / 3) and res.n_between == 3


def test_cluster_contrast_moral_foundations_floor():
    # care, fairness | loyalty, authority, sanctity | liberty apart: 5!/(2! 3!) = 10 labelings,
    # so even a perfect split reaches only p = 1/10
    R = np.full((6, 6), -0.3)
    R[:2, :2] = 0.8
    R[2:5, 2:5] = 0.8
    np.fill_diagonal(R, 1.0)
    labels = ["ind", "ind", "bind", "bind", "bind", None]
    res = cluster_contrast(R, labels, n_perm=9999)
    assert res.contrast == pytest.approx(1.1)
    assert res.p_value == pytest.approx(0.1) and res.n_perm == 120


def test_cluster_contrast_undefined_is_nan():
    R = sym(4, [0.6, 0.1, -0.1, 0.0, 0.2, 0.4])
    assert math.isnan(cluster_contrast(R, ["a"] * 4).contrast)  # one cluster
    assert math.isnan(cluster_contrast(R, ["a", "b", "c", "d"]).contrast)  # no within pair
    assert math.isnan(cluster_contrast(R, [None] * 4).p_value)
    assert math.isnan(cluster_contrast(np.full((4, 4), NAN), ["a", "a", "b", "b"]).contrast)
    with pytest.raises(ValueError):
        cluster_contrast(R, ["a", "b"])


# --------------------------------------------------------------------------------------------------
# calibration: rejection rate at alpha = 0.05 under a true null, and power under planted structure

N_SIMS = 500
N_SCENES = 14  # the bundled held-out split
ALPHA = 0.05
B = 199  # permutations per test: p resolution 1/200, exact level 0.05 for a continuous statistic


def band(nominal: float, n: int) -> tuple[float, float]:
    """Central 99.9 % binomial band of a rejection rate over n simulated datasets."""
    lo, hi = stats.binom.interval(0.999, n, nominal)
    return lo / n, hi / n


def spearman_stack(D: np.ndarray) -> np.ndarray:
    """Spearman matrix of each (n_scenes, k) slice of D (sims, n_scenes, k)."""
    r = stats.rankdata(D, axis=1)
    r = r - r.mean(axis=1, keepdims=True)
    C = np.einsum("sni,snj->sij", r, r)
    d = np.sqrt(np.diagonal(C, axis1=1, axis2=2))
    return C / (d[:, :, None] * d[:, None, :])


def circle_shifts(rng, slots, n_slots, loading):
    """Shifts driven by a 2-D latent on the circle: neighbours co-move, opposites trade off."""
    th = 2 * np.pi * np.asarray(slots) / n_slots
    z = rng.standard_normal((N_SIMS, N_SCENES, 2))
    e = rng.standard_normal((N_SIMS, N_SCENES, len(slots)))
    return loading * (z[..., :1] * np.cos(th) + z[..., 1:] * np.sin(th)) + e


def rate(ps) -> float:
    ps = np.asarray(ps)
    assert np.isfinite(ps).all()
    return float(np.mean(ps <= ALPHA))


@pytest.fixture(scope="module")
def report():
    lines: list[str] = []
    yield lines
    print("\n" + "\n".join(lines))


def test_calibration_rthor(report):
    rng = np.random.default_rng(2026)
    lo, hi = band(ALPHA, N_SIMS)
    null = spearman_stack(rng.standard_normal((N_SIMS, N_SCENES, 10)))
    fpr = rate([rthor(R, SCHWARTZ_SLOTS, 9, n_perm=B, rng=rng).p_value for R in null])
    # a value without enough scenes (a NaN row and column; which one is random)
    gone = rng.integers(10, size=N_SIMS)
    null[np.arange(N_SIMS), gone, :] = np.nan
    null[np.arange(N_SIMS), :, gone] = np.nan
    fpr_nan = rate([rthor(R, SCHWARTZ_SLOTS, 9, n_perm=B, rng=rng).p_value for R in null])
    # exact enumeration (6! relabelings) on a 6-slot circle
    null6 = spearman_stack(rng.standard_normal((N_SIMS, N_SCENES, 6)))
    fpr6 = rate([rthor(R, range(6)).p_value for R in null6])
    planted = spearman_stack(circle_shifts(rng, SCHWARTZ_SLOTS, 9, loading=1.0))
    power = rate([rthor(R, SCHWARTZ_SLOTS, 9, n_perm=B, rng=rng).p_value for R in planted])
    report.append(
        f"rthor: FPR {fpr:.3f} (10 values, MC), {fpr_nan:.3f} (one value NaN), "
        f"{fpr6:.3f} (6, exact); power {power:.3f}"
    )
    assert lo <= fpr <= hi and lo <= fpr_nan <= hi
    assert fpr6 <= hi  # discrete (ties between relabelings): at most the level
    assert power >= 0.8


def test_calibration_cosine_profile(report):
    rng = np.random.default_rng(2027)
    lo, hi = band(ALPHA, N_SIMS)
    th = np.delete(NINE, 0)  # the 8 other slots when the target sits at slot 0
    t = NINE[0]
    res = [cosine_profile(y, th, t, n_perm=B, rng=rng) for y in rng.standard_normal((N_SIMS, 8))]
    fpr, fpr_t = rate([r.p_value for r in res]), rate([r.p_target for r in res])
    Y = 0.3 + 1.2 * np.cos(th - t) + rng.standard_normal((N_SIMS, 8)) * 0.4
    res = [cosine_profile(y, th, t, n_perm=B, rng=rng) for y in Y]
    power, power_t = rate([r.p_value for r in res]), rate([r.p_target for r in res])
    report.append(
        f"cosine_profile: FPR R^2 {fpr:.3f}, target {fpr_t:.3f}; "
        f"power R^2 {power:.3f}, target {power_t:.3f}"
    )
    assert lo <= fpr <= hi and lo <= fpr_t <= hi
    assert power >= 0.8 and power_t >= 0.8


def test_calibration_cluster_contrast(report):
    rng = np.random.default_rng(2028)
    lo, hi = band(ALPHA, N_SIMS)
    labels = ["a", "a", "a", "b", "b", "b", "c", "c", "c", None]
    null = spearman_stack(rng.standard_normal((N_SIMS, N_SCENES, 10)))
    fpr = rate([cluster_contrast(R, labels, n_perm=B, rng=rng).p_value for R in null])
    f = rng.standard_normal((N_SIMS, N_SCENES, 3))
    D = np.concatenate([np.repeat(f, 3, axis=2), rng.standard_normal((N_SIMS, N_SCENES, 1))], 2)
    D = 0.8 * D + rng.standard_normal(D.shape)
    D[..., 9] = 3.0 * f[..., 0] + rng.standard_normal((N_SIMS, N_SCENES))  # apart, not ignored
    power = rate(
        [cluster_contrast(R, labels, n_perm=B, rng=rng).p_value for R in spearman_stack(D)]
    )
    report.append(f"cluster_contrast: FPR {fpr:.3f}, power {power:.3f}")
    assert lo <= fpr <= hi
    assert power >= 0.8
