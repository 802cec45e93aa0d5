"""`vat.report.headline`: the plain-English reading calls a number significant only as far as its
own test goes, and the methods paragraph names what was run (or that nothing was resampled)."""

import dataclasses
import math
import re

from tests.report.helpers import TARGET, states
from tests.schwartz import SCHWARTZ
from vat.metrics import VATResult, compute_vat
from vat.report import (
    summary_table,
)
from vat.report.headline import interpretation


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


def test_report_of_a_result_without_resampling() -> None:
    """n_bootstrap = n_permutations = 0: no intervals, no tests, and the report says so."""
    pre, post = states()
    r = compute_vat(pre, post, TARGET, SCHWARTZ, n_bootstrap=0, n_permutations=0, seed=0)
    text = interpretation(r)
    assert "significant" not in text and "noise floor" in text  # "no permutation null" wording
    from vat.report import methods_paragraph

    m = methods_paragraph(r)
    assert "n_bootstrap = 0" in m and "n_permutations = 0" in m
    assert not re.search(r"\bnan\b", summary_table(r), re.IGNORECASE)
