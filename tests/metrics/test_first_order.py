"""`vat.metrics.first_order`: shift, gain, tax, GND and the micro-to-basic state, against numbers
worked out by hand (in the comments)."""

import math

import numpy as np
import pytest

from tests.metrics.helpers import D_HAND, S_POST, S_PRE
from tests.schwartz import (
    BASIC_VALUES,
    MICRO,
    MICRO_VALUES,
    SCHWARTZ,
)
from vat import metrics as M

# The module promises NaN, never RuntimeWarning spam: any leak fails the test.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


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
    with pytest.raises(ValueError, match="coupling_method=pearson: expected one of spearman"):
        M.coupling(D_HAND, method="pearson", min_overlap=2)


def test_micro_to_basic_state_hand():
    # hedonism = mean(pleasure, enjoying_life): scene 0 (1 + 3) / 2 = 2, scene 1 only 2 -> 2
    # stimulation = daring: [5, NaN]; every other basic value has no column -> NaN
    S = np.array([[1.0, 3.0, 5.0], [np.nan, 2.0, np.nan]])
    out = M.micro_to_basic_state(S, SCHWARTZ, ["Pleasure", "enjoying life", "daring"])
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
    out = M.micro_to_basic_state(np.array([row], dtype=float), SCHWARTZ)
    assert out[0, BASIC_VALUES.index("hedonism")] == 0.5  # 2 micro-values
    assert out[0, BASIC_VALUES.index("power")] == 2.0  # 5
    assert out[0, BASIC_VALUES.index("universalism")] == 4.0  # 9
