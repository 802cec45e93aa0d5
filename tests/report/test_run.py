"""`vat.report.run`: the console summary table and the Markdown report written from a real
`VATResult` (validity first, calibrated statistics beside each number, figures linked, NaN as n/a,
unbounded ratio intervals said so)."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from tests.report.helpers import NOISY, TARGET, assert_png
from tests.schwartz import BASIC, BASIC_VALUES, SCHWARTZ
from vat.metrics import VATResult, compute_vat
from vat.report import (
    gain_tax_point,
    make_figures,
    summary_table,
    write_report,
)
from vat.report.format import fmt, fmt_interval, fmt_p


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
        assert_png(p)
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


def test_weak_gain_prints_unbounded_ratios_and_claims_nothing(tmp_path: Path) -> None:
    """A gain whose interval covers 0: tau intervals unbounded (Fieller), GND open above, no
    'backfired' or 'significant' claim the tests do not support; survives a JSON round trip."""
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(14, len(BASIC_VALUES)))
    post = pre + rng.normal(scale=0.3, size=pre.shape)
    post[:, BASIC_VALUES.index(TARGET)] += 0.05  # G = -0.095 [-0.250, 0.061]
    r = compute_vat(pre, post, TARGET, SCHWARTZ, n_bootstrap=200, n_permutations=200, seed=0)
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
        assert_png(p)
