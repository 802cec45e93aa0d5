"""Numerical faults in the metrics: a gain below epsilon gives NaN ratios with a flag, never inf,
huge numbers or a crash (the training-side NaN loss is in test_crashes.py)."""

import json
import math
import warnings

import numpy as np
import pytest

from tests.schwartz import BASIC_VALUES, SCHWARTZ
from vat import metrics as M


def vat_of(pre, post, **resampling):
    """Security as the target, eps = 1e-3 in score units."""
    return M.compute_vat(pre, post, "security", SCHWARTZ, eps=1e-3, eps_units="score", **resampling)


@pytest.mark.parametrize("gain", [0.0, 1e-9, -4e-4, 9.9e-4])
def test_gain_below_eps_gives_nan_tax_with_a_flag(gain):
    rng = np.random.default_rng(0)
    pre = rng.normal(size=(40, 10))
    post = pre + 0.2 * rng.normal(size=(40, 10))
    t = BASIC_VALUES.index("security")
    post[:, t] = pre[:, t] + gain  # the target moves by exactly `gain` in every scene
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero or invalid-value warnings either
        r = vat_of(pre, post, n_bootstrap=50, n_permutations=50)
    assert r.gain == pytest.approx(gain, abs=1e-12) and r.gain_too_small
    assert math.isnan(r.gnd_l1) and all(math.isnan(x) for x in r.tau.values())
    data = json.loads(r.to_json(), parse_constant=lambda c: pytest.fail(f"JSON constant {c}"))
    assert data["gnd_l1"] is None and data["gain_too_small"] is True
    # what does not divide by the gain stays defined
    assert all(math.isfinite(s) for s in r.mean_shift.values())


def test_gain_just_above_eps_is_finite():
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(40, 10))
    post = pre + 0.2 * rng.normal(size=(40, 10))
    t = BASIC_VALUES.index("security")
    post[:, t] = pre[:, t] + 2e-3
    r = vat_of(pre, post, n_bootstrap=0, n_permutations=0)
    assert not r.gain_too_small and math.isfinite(r.gnd_l1)
