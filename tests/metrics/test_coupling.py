"""`vat.metrics.coupling`: the coupling matrix R (Spearman, Kendall), nVAT, hubs and circumplex
consistency, against numbers worked out by hand (in the comments) and scipy."""

import math
import warnings

import numpy as np
import pytest
from scipy import stats

from tests.metrics.helpers import D_HAND
from tests.schwartz import (
    BASIC_VALUES,
    MICRO,
    MICRO_VALUES,
    SCHWARTZ,
    angle,
    circumplex_distance,
)
from vat import metrics as M

# The module promises NaN, never RuntimeWarning spam: any leak fails the test.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


SQRT3_2 = math.sqrt(3) / 2


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


def test_hubs_names_are_required_never_guessed_from_the_size():
    R = np.eye(10)
    R[0, 9] = R[9, 0] = 0.5
    h = M.hubs(R, BASIC_VALUES, k=2)
    assert h.top == ("self_direction", "universalism")
    with pytest.raises(ValueError, match="values must name the 10 columns"):
        M.hubs(R)
    with pytest.raises(ValueError, match="3 value names for 10 columns"):
        M.hubs(R, ["a", "b", "c"])


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
    assert M.circumplex_consistency(R, SCHWARTZ.angles(BASIC_VALUES)) == pytest.approx(1.0)
    assert M.circumplex_consistency(-R, SCHWARTZ.angles(BASIC_VALUES)) == pytest.approx(-1.0)
    # opposite of the circumplex on half the pairs only: still positive but below 1
    noisy = R.copy()
    noisy[0, 1:5] = noisy[1:5, 0] = -noisy[0, 1:5]
    assert 0 < M.circumplex_consistency(noisy, SCHWARTZ.angles(BASIC_VALUES)) < 1


def test_circumplex_consistency_micro_uses_basic_angles():
    R = _cos_matrix(MICRO_VALUES)
    assert R[0, 1] == 1.0  # two self-direction micro-values: same angle
    assert M.circumplex_consistency(R, SCHWARTZ.angles(MICRO_VALUES)) == pytest.approx(1.0)
    assert math.isnan(
        M.circumplex_consistency(np.full((10, 10), np.nan), SCHWARTZ.angles(BASIC_VALUES))
    )


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
