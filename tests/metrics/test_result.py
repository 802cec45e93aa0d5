"""`vat.metrics.result.compute_vat` and `VATResult`: the pieces put together, names and levels,
undefined numbers as JSON null, and planted structure recovered."""

import json
import math
import warnings

import numpy as np
import pytest

from tests.schwartz import (
    BASIC_VALUES,
    MICRO_VALUES,
    SCHWARTZ,
    UnknownValueError,
)
from vat import metrics as M

# The module promises NaN, never RuntimeWarning spam: any leak fails the test.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _basic_states(seed=0, n=30):
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(n, 10))
    D = 0.3 * rng.normal(size=(n, 10))
    D[:, BASIC_VALUES.index("benevolence")] += 1.0
    return pre, pre + D


def test_compute_vat_matches_the_pieces():
    pre, post = _basic_states()
    r = M.compute_vat(
        pre, post, "Benevolence", SCHWARTZ, n_bootstrap=50, n_permutations=200, seed=3
    )
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
        M.compute_vat(pre, post, "kindness", SCHWARTZ, n_bootstrap=0, n_permutations=0)
    with pytest.raises(ValueError, match="columns"):
        M.compute_vat(pre[:, :3], post[:, :3], "power", SCHWARTZ, n_bootstrap=0, n_permutations=0)
    three = ["Power", "achievement", "HEDONISM"]
    r = M.compute_vat(
        pre[:, :3], post[:, :3], "power", SCHWARTZ, three, n_bootstrap=0, n_permutations=0
    )
    assert r.values == ("power", "achievement", "hedonism")
    with pytest.raises(ValueError, match="not among"):
        M.compute_vat(
            pre[:, :3], post[:, :3], "security", SCHWARTZ, three, n_bootstrap=0, n_permutations=0
        )
    # micro level: 56 columns, target is a micro-value
    rng = np.random.default_rng(1)
    pre_m = rng.normal(size=(12, 56))
    post_m = pre_m + rng.normal(size=(12, 56))
    r = M.compute_vat(
        pre_m, post_m, "Helpful", SCHWARTZ, MICRO_VALUES, n_bootstrap=20, n_permutations=50
    )
    assert r.level == "micro" and r.target == "helpful" and len(r.R) == 56
    assert -1 <= r.circumplex_consistency <= 1


def test_compute_vat_skips_and_json_round_trip_with_nan_as_null():
    pre, post = _basic_states()
    post[:, BASIC_VALUES.index("power")] = pre[:, BASIC_VALUES.index("power")]  # G = 0 exactly
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = M.compute_vat(pre, post, "power", SCHWARTZ, n_bootstrap=0, n_permutations=0)
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
        S_pre, S_pre + D, "benevolence", SCHWARTZ, n_bootstrap=500, n_permutations=2000, seed=0
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


def test_a_result_file_from_before_taxonomies_were_objects_still_loads_and_renders():
    """vat.json written before the taxonomy, structure and hub-Holm fields: Schwartz's circle,
    its structure section from the circumplex fields, hub Holm shown as missing."""
    from vat.metrics.fields import SWEEP, flat_row
    from vat.report.sections import structure_section

    rng = np.random.default_rng(0)
    pre = rng.normal(size=(20, 10))
    new = M.compute_vat(pre, pre + rng.normal(size=(20, 10)), "power", SCHWARTZ,
                        n_bootstrap=20, n_permutations=50).to_dict()  # fmt: skip
    old = {k: v for k, v in new.items()
           if k not in ("taxonomy", "structure_kind", "structure", "hub_p_holm")}  # fmt: skip
    r = M.VATResult.from_json(json.dumps(old))
    assert (r.taxonomy, r.structure_kind, r.structure, r.hub_p_holm) == (
        "schwartz",
        "circle",
        {},
        {},
    )
    section = "\n".join(structure_section(r))
    assert "Structure: the circle" in section and "RTHOR" not in section  # not in the old file
    assert flat_row(old, SWEEP)["nvat_offdiag_excess"] == new["nvat_offdiag_excess"]
