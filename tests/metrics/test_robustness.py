"""Micro level with sibling exclusion, and the agreement numbers of the robustness appendix."""

from __future__ import annotations

import numpy as np
import pytest

from tests.schwartz import BASIC_VALUES, MICRO_VALUES, SCHWARTZ, basic_value_of, micro_values_of
from vat.metrics import compute_vat, micro_to_basic_state
from vat.metrics.robustness import merge_target_micro, micro_level_vat, robustness

PARENT = np.array([basic_value_of(m) for m in MICRO_VALUES])


def test_siblings_are_the_target_and_never_part_of_the_tax():
    S = np.arange(3 * 56, dtype=float).reshape(3, 56)
    out, names, col = merge_target_micro(S, MICRO_VALUES, "benevolence", SCHWARTZ)
    sib = set(micro_values_of("benevolence"))
    assert col in sib and names[0] == col
    assert not (set(names[1:]) & sib) and len(names) == 56 - len(sib) + 1
    np.testing.assert_allclose(out[:, 0], S[:, PARENT == "benevolence"].mean(axis=1))


def test_micro_gain_is_the_siblings_mean_and_moving_siblings_is_no_tax():
    rng = np.random.default_rng(0)
    pre = rng.normal(size=(30, 56))
    post = pre + rng.normal(0, 0.01, pre.shape)
    post[:, PARENT == "security"] += 0.5  # only the target's micro-values move
    r = micro_level_vat(pre, post, "security", SCHWARTZ, n_bootstrap=100, n_permutations=100)
    assert r.gain == pytest.approx((post - pre)[:, PARENT == "security"].mean(), abs=1e-3)
    assert r.gnd_l1 < 0.05  # the siblings moved, and they are the target, not its tax
    assert basic_value_of(r.target) == "security"


def test_agreement_numbers_on_a_planted_tax():
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(40, 56))
    post = pre + rng.normal(0, 0.2, pre.shape)
    post[:, PARENT == "benevolence"] += 0.5
    for v, d in (("universalism", 0.3), ("power", -0.2), ("tradition", 0.1)):
        post[:, v == PARENT] += d
    b0, b1 = micro_to_basic_state(pre, SCHWARTZ), micro_to_basic_state(post, SCHWARTZ)
    kw = {"n_bootstrap": 100, "n_permutations": 100}
    basic = compute_vat(b0, b1, "benevolence", SCHWARTZ, BASIC_VALUES, **kw)
    micro = micro_level_vat(pre, post, "benevolence", SCHWARTZ, **kw)
    kendall = compute_vat(
        b0, b1, "benevolence", SCHWARTZ, BASIC_VALUES, coupling_method="kendall", **kw
    )
    a = robustness(basic, micro, kendall, SCHWARTZ)
    assert a["tau_rank_corr_basic_micro"] > 0.8
    assert a["R_rank_corr_spearman_kendall"] > 0.9
    assert a["gain_micro"] == pytest.approx(a["gain_basic"], rel=0.05)
    assert a["n_values_micro"] == 56 - len(micro_values_of("benevolence"))


def test_level_is_checked_at_compose_time(compose_cfg):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"metrics\.level=micro56") as e:
        compose_cfg("train", ["metrics.level=micro56"])
    assert "expected one of [value, both]" in str(e.value.__cause__)
    assert "full_key: metrics.level" in str(e.value.__cause__)
