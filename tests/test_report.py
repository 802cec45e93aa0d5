"""The reporting layer: console table, Markdown report and PNG figures from a real VATResult."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vat.metrics import VATResult, compute_vat, stability
from vat.report import (
    gain_tax_point,
    make_figures,
    plot_gain_vs_tax,
    summary_table,
    write_report,
)
from vat.report.format import fmt, fmt_interval, fmt_p, fmt_ratio_interval
from vat.report.headline import interpretation
from vat.values import BASIC, BASIC_VALUES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TARGET = "benevolence"
NOISY = "power"  # marked near chance in the validity table


def _states(n_scenes: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pre/post states with a planted gain on the target and a planted loss on `NOISY`."""
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(n_scenes, len(BASIC_VALUES)))
    post = pre + rng.normal(scale=0.1, size=pre.shape)
    post[:, BASIC_VALUES.index(TARGET)] += 0.5
    post[:, BASIC_VALUES.index(NOISY)] -= 0.25
    return pre, post


@pytest.fixture(scope="module")
def result() -> VATResult:
    pre, post = _states()
    return compute_vat(pre, post, TARGET, n_bootstrap=200, n_permutations=2000, seed=0)


@pytest.fixture(scope="module")
def flat_result() -> VATResult:
    """S_post == S_pre: no gain, so every ratio is undefined."""
    pre, _ = _states()
    return compute_vat(pre, pre.copy(), TARGET, n_bootstrap=50, n_permutations=500, seed=0)


@pytest.fixture(scope="module")
def validity() -> pd.DataFrame:
    rows = []
    for v in BASIC_VALUES:
        near = v == NOISY
        rows.append(
            {
                "value": v,
                "n_pairs": 40,
                "accuracy": 0.5 if near else 0.8,
                "ci_low": 0.35 if near else 0.65,
                "ci_high": 0.65 if near else 0.9,
                "near_chance": near,
            }
        )
    return pd.DataFrame(rows)


def _assert_png(path: Path, min_side: int = 100) -> None:
    """A real, non-trivial PNG: magic bytes, then the IHDR chunk's width and height."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_side and height >= min_side, (width, height)
    assert len(data) > 2000  # more than a blank canvas


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


@pytest.fixture(scope="module")
def report_dir(result: VATResult, validity: pd.DataFrame, tmp_path_factory) -> Path:
    """Figures and report for the planted result, rendered once (figures cost ~0.4 s each)."""
    out = tmp_path_factory.mktemp("report")
    points = [gain_tax_point(result, 1.0), {"strength": 0.5, "gain": 0.2, "gnd": 0.4}]
    figs = make_figures(result, out, points=points)
    assert set(figs) == {"shift_circumplex", "tau", "coupling", "gain_vs_tax"}
    prof = stability([2, 4, 8], [0.1, 0.3, 0.5], [0.5, 0.4, 0.3], [0.1, 0.1, 0.2])
    path = write_report(
        out,
        result=result,
        validity=validity,
        model="tiny-model",
        probe="likelihood",
        intervention="prompting",
        figures=figs,
        stability=prof,
        notes=["synthetic states"],
    )
    assert path == out / "report.md"
    return out


def test_figures_are_pngs(report_dir: Path, tmp_path: Path) -> None:
    for name in ("shift_circumplex", "tau", "coupling", "gain_vs_tax"):
        _assert_png(report_dir / f"{name}.png")
    # One point, no intervals at all, into a folder that does not exist yet: still a figure.
    one = plot_gain_vs_tax([{"strength": 2, "gain": 0.3, "gnd": 0.1}], tmp_path / "a" / "one.png")
    _assert_png(one)


def test_report_contents(result: VATResult, report_dir: Path) -> None:
    text = (report_dir / "report.md").read_text()

    # Setup line and headline numbers, formatted from the result itself.
    for s in ("tiny-model", "likelihood", "prompting", "Benevolence", f"{result.n_scenes}"):
        assert s in text
    assert f"{result.gain:.3f}" in text
    assert fmt_interval(result.intervals["gain"]) in text
    assert f"{result.gnd_l1:.3f}" in text
    assert f"{result.nvat_offdiag:.3f}" in text
    assert f"{result.circumplex_consistency:.3f}" in text

    # Calibrated statistics beside each number: GND's noise floor, bias correction and drift
    # test; the debiased nVAT with its interval, raw value, null and p; unevenness; Mantel.
    for x in (result.gnd_l1_bc, result.gnd_l1_null, result.nvat_offdiag_excess,
              result.nvat_offdiag_null, result.tau_spread, result.circumplex_null):  # fmt: skip
        assert fmt(x) in text
    assert fmt_interval(result.intervals["nvat_offdiag"]) in text
    for p in (result.p_gain, result.p_drift, result.p_nvat, result.p_uneven, result.p_circumplex):
        assert fmt_p(p) in text
    # The methods paragraph names the tests actually run, not the old sign-flip test.
    for s in (
        "bootstrap-t",
        "Fieller",
        "permutation null",
        "Mantel",
        "Holm-corrected across the 9",
    ):
        assert s in text, s
    assert "sign-flip" not in text and "sign patterns" not in text
    assert "does not contain the estimate" not in text  # the old nVAT caveat is gone
    # Hubs with their bootstrap rank frequency and permutation p.
    top = result.hubs[0]
    share = f"{100 * result.hub_top_freq[top]:.0f}%"
    assert f"{BASIC[top].label} is a top-{result.hub_k} hub in {share} of resamples" in text
    assert fmt_p(result.hub_p[top]) in text

    # Probe validity comes first and names the near-chance value.
    assert text.index("Probe validity") < text.index("Headline")
    warning = next(line for line in text.splitlines() if "measures noise" in line)
    assert BASIC[NOISY].label in warning

    # The plain-English reading names the planted loss as the strongest collateral loss.
    assert f"strongest collateral loss was in {BASIC[NOISY].label}" in text
    assert f"tau = {result.tau[NOISY]:.3f}" in text

    # Figures embedded by relative links to the files next to the report.
    for name in ("shift_circumplex", "tau", "coupling", "gain_vs_tax"):
        assert f"]({name}.png)" in text

    # Stability, hubs, circumplex and notes.
    assert "Monotonicity" in text and "| 8 |" in text
    assert all(BASIC[h].label in text for h in result.hubs)
    assert "neighbours co-move" in text
    assert "- synthetic states" in text


def test_gain_too_small(flat_result: VATResult, validity: pd.DataFrame, tmp_path: Path) -> None:
    r = flat_result
    assert r.gain_too_small and math.isnan(r.gnd_l1)
    assert all(math.isnan(x) for x in r.tau.values())
    # A one-point trajectory whose GND is undefined, too.
    figs = make_figures(r, tmp_path, points=[gain_tax_point(r, 1.0)])
    for p in figs.values():
        _assert_png(p)
    path = write_report(
        tmp_path,
        result=r,
        validity=validity,
        model="m",
        probe="judgment",
        intervention="sft",
        figures=figs,
    )
    text = path.read_text()
    assert "did not move the target measurably" in text
    assert "tax ratios are undefined" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)  # NaN is always printed as n/a
    assert "n/a" in text
    for name in figs:
        assert f"]({name}.png)" in text


def test_summary_table(result: VATResult, validity: pd.DataFrame, flat_result: VATResult) -> None:
    table = summary_table(result, validity)
    for v in BASIC_VALUES:
        assert v in table
    assert f"{result.gain:.3f}" in table and "near chance" in table
    assert "hubs" in table and result.hubs[0] in table
    assert len(table.splitlines()) <= 30  # one screen

    flat = summary_table(flat_result)
    for v in BASIC_VALUES:
        assert v in flat
    assert "n/a" in flat and "gain too small" in flat
    assert not re.search(r"\bnan\b", flat, re.IGNORECASE)


def test_no_number_is_called_significant_beyond_its_test(result: VATResult) -> None:
    """Significance follows the p-value of each number's own test at 1 - ci (Holm where a family)."""
    text = interpretation(result)
    # The planted loss (Power) survives Holm at 0.05; nothing else does.
    assert sum(_significant_holm(result, 0.05)) == 1
    assert "1 of the 9 other values moved significantly (Holm p < 0.05): Power." in text
    # nVAT's permutation test does not reject on these states: not "above its noise floor".
    assert result.p_nvat >= 0.05
    assert "not above its noise floor" in text

    # Same numbers, every Holm p above alpha: no value is called significant.
    calm = dataclasses.replace(result, p_holm={v: 0.15 for v in result.p_holm})
    assert "0 of the 9 other values moved significantly" in interpretation(calm)
    # A looser interval level loosens the threshold with it (alpha = 1 - ci).
    loose = dataclasses.replace(calm, ci=0.8)
    assert "9 of the 9 other values moved significantly (Holm p < 0.2)" in interpretation(loose)
    # nVAT above its noise floor only when its permutation p is below alpha.
    coupled = dataclasses.replace(result, p_nvat=0.001, nvat_offdiag_excess=0.3)
    assert "is above its noise floor" in interpretation(coupled)
    assert "is above its noise floor" not in interpretation(
        dataclasses.replace(coupled, p_nvat=0.07)
    )


def _significant_holm(result: VATResult, alpha: float) -> list[bool]:
    return [p < alpha for p in result.p_holm.values() if math.isfinite(p)]


def test_weak_gain_prints_unbounded_ratios_and_claims_nothing(tmp_path: Path) -> None:
    """A gain whose interval covers 0: tau intervals unbounded (Fieller), GND open above, no
    'backfired' or 'significant' claim the tests do not support; survives a JSON round trip."""
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(14, len(BASIC_VALUES)))
    post = pre + rng.normal(scale=0.3, size=pre.shape)
    post[:, BASIC_VALUES.index(TARGET)] += 0.05  # G = -0.095 [-0.250, 0.061]
    r = compute_vat(pre, post, TARGET, n_bootstrap=200, n_permutations=200, seed=0)
    lo, hi = r.intervals["gain"]
    assert lo <= 0 <= hi and not r.gain_bounded
    assert all(math.isinf(a) and math.isinf(b) for k, (a, b) in r.intervals.items()
               if k.startswith("tau."))  # fmt: skip
    # vat.json writes the infinite ends as strings; the report reads them back unchanged.
    back = VATResult.from_dict(json.loads(r.to_json()))
    for res in (r, back):
        text = write_report(
            tmp_path, result=res, model="m", probe="p", intervention="i"
        ).read_text()
        assert "unbounded (gain's interval covers 0)" in text
        assert "backfired" not in text
        assert "Caution: the gain's interval includes zero" in text
        assert not re.search(r"\bnan\b", text, re.IGNORECASE)
        table = summary_table(res)
        assert (
            "unbounded (gain's interval covers 0)" in table
            and "tax intervals are unbounded" in table
        )
    figs = make_figures(back, tmp_path, points=[gain_tax_point(back, 1.0)])
    for p in figs.values():
        _assert_png(p)


def test_report_of_a_result_without_resampling() -> None:
    """n_bootstrap = n_permutations = 0: no intervals, no tests, and the report says so."""
    pre, post = _states()
    r = compute_vat(pre, post, TARGET, n_bootstrap=0, n_permutations=0, seed=0)
    text = interpretation(r)
    assert "significant" not in text and "noise floor" in text  # "no permutation null" wording
    from vat.report import methods_paragraph

    m = methods_paragraph(r)
    assert "n_bootstrap = 0" in m and "n_permutations = 0" in m
    assert not re.search(r"\bnan\b", summary_table(r), re.IGNORECASE)
