"""The reporting layer: console table, Markdown report and PNG figures from a real VATResult."""

from __future__ import annotations

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
from vat.report.markdown import fmt, fmt_interval, fmt_p
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
