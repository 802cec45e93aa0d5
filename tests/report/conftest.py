"""A real `VATResult` on planted states, a flat one, a validity table, and the figures and report
rendered from them once for the report tests (figures cost ~0.4 s each)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.report.helpers import NOISY, TARGET, states
from tests.schwartz import BASIC_VALUES, SCHWARTZ
from vat.metrics import VATResult, compute_vat, stability
from vat.report import gain_tax_point, make_figures, write_report


@pytest.fixture(scope="package")
def result() -> VATResult:
    pre, post = states()
    return compute_vat(pre, post, TARGET, SCHWARTZ, n_bootstrap=200, n_permutations=2000, seed=0)


@pytest.fixture(scope="package")
def flat_result() -> VATResult:
    """S_post == S_pre: no gain, so every ratio is undefined."""
    pre, _ = states()
    return compute_vat(
        pre, pre.copy(), TARGET, SCHWARTZ, n_bootstrap=50, n_permutations=500, seed=0
    )


@pytest.fixture(scope="package")
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


@pytest.fixture(scope="package")
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
