"""`vat.report.format`: numbers, intervals (open and unbounded ones too) and p-values as text."""

import math

from vat.report.format import fmt, fmt_interval, fmt_p, fmt_ratio_interval


def test_format_helpers() -> None:
    assert fmt(0.41234) == "0.412"
    assert fmt(float("nan")) == "n/a" and fmt(None) == "n/a" and fmt(math.inf) == "n/a"
    assert fmt(-0.0001) == "0.000"  # no "-0.000"
    assert fmt_interval((0.1, float("nan"))) == "[0.100, n/a]"
    assert fmt_interval((float("nan"), float("nan"))) == "n/a"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.2) == "0.200"
    # infinite ends (an unbounded ratio interval), also as the JSON strings of `to_jsonable`
    assert fmt_interval((0.04, math.inf)) == "[0.040, +inf)"
    assert fmt_interval((-math.inf, 0.5)) == "(-inf, 0.500]"
    assert fmt_interval((-math.inf, math.inf)) == fmt_interval(("-inf", "inf")) == "unbounded"
    assert fmt_interval((None, "inf")) == "[n/a, +inf)"
    assert fmt_ratio_interval((-math.inf, math.inf)) == "unbounded (gain's interval covers 0)"
    assert fmt_ratio_interval((0.0, math.inf)) == (
        "[0.000, +inf) (unbounded: gain's interval covers 0)"
    )
    assert fmt_ratio_interval((0.1, 0.2)) == "[0.100, 0.200]"
