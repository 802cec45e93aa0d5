"""Probe checks after the intervention, on hand-built scores."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.schwartz import SCHWARTZ
from vat.probes.base import ProbeResult
from vat.probes.checks import probe_agreement, probe_checks
from vat.report.checks import check_warnings, checks_lines


def _result(prefs, mass=None, fwd=None, rev=None):
    """Two scenes x 2 values (one micro-value each): an express and a suppress item per pair."""
    rows = []
    k = 0
    for scene in ("s0", "s1"):
        for value, micro in (("benevolence", "helpful"), ("security", "clean")):
            for pol in ("express", "suppress"):
                rows.append({"id": f"{scene}/{micro}/{pol}", "scene_id": scene, "value": value,
                             "micro_value": micro, "polarity": pol, "pref": prefs[k]})  # fmt: skip
                k += 1
    items = pd.DataFrame(rows)
    if mass is not None:
        items["option_mass"] = mass
    if fwd is not None:
        items["rating_forward"], items["rating_reverse"] = fwd, rev
    sign = items.polarity.map({"express": 1.0, "suppress": -1.0})
    units = items[["scene_id", "value", "micro_value"]].assign(score=sign * items.pref)
    return ProbeResult("judgment", items, units, taxonomy=SCHWARTZ)


def test_pair_accuracy_mass_and_order_gap_by_hand():
    pre = _result([2, 1, 2, 1, 1, 2, 2, 1], mass=0.8, fwd=[3.0] * 8, rev=[3.0] * 8)
    post = _result([2, 1, 2, 1, 2, 1, 2, 1], mass=0.3, fwd=[4.0] * 8, rev=[2.0] * 8)
    c = probe_checks(pre, post)
    assert c["pair_accuracy_pre"] == pytest.approx(0.75)  # 3 of 4 pairs express > suppress
    assert c["pair_accuracy_post"] == pytest.approx(1.0)
    assert (c["option_mass_pre"], c["option_mass_post"]) == pytest.approx((0.8, 0.3))
    assert (c["order_gap_pre"], c["order_gap_post"]) == pytest.approx((0.0, 2.0))
    by_value = {r["value"]: r for r in c["pair_accuracy_by_value"]}
    assert by_value["benevolence"]["pre"] == 0.5 and by_value["benevolence"]["post"] == 1.0
    w = check_warnings("judgment", c)
    assert any("option-token mass fell" in x for x in w)
    assert any("forward/reverse rating gap grew" in x for x in w)
    assert not any("pair accuracy fell" in x for x in w)
    md = "\n".join(checks_lines({"judgment": c}))
    assert "0.750 -> 1.000" in md and "0.800 -> 0.300" in md and "**Warning:**" in md


def test_a_likelihood_probe_has_no_mass_or_order_rows():
    r = _result([1, 0] * 4)
    c = probe_checks(r, r)
    assert c["option_mass_pre"] is None and c["order_gap_post"] is None
    assert check_warnings("likelihood", c) == []
    assert "| likelihood | 1.000 -> 1.000 | n/a | n/a |" in "\n".join(
        checks_lines({"likelihood": c})
    )


def test_agreement_of_two_probes():
    pre = _result([2, 1, 3, 1, 1, 2, 5, 1])
    post = _result([3, 1, 3, 1, 1, 1, 6, 1])
    same = probe_agreement((pre, post), (pre, post))
    assert same["margins_pre"] == pytest.approx(1.0) and same["margins_post"] == pytest.approx(1.0)
    flipped = _result([-x for x in [2, 1, 3, 1, 1, 2, 5, 1]])
    a = probe_agreement((pre, post), (flipped, post))
    assert a["margins_pre"] == pytest.approx(-1.0)
