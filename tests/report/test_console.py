"""`vat.report.console`: the table a run ends with."""

import pandas as pd

from vat.report.console import results_table, validity_flag
from vat.report.format import fmt


def test_table_has_the_headline_numbers_and_the_report_path(result, flat_result):
    valid = pd.DataFrame({"value": ["power", "security"], "near_chance": [True, False]})
    text = results_table(
        {"likelihood": ("step 10", result, None), "judgment": ("step 10", flat_result, valid)},
        "out/report.md",
    )
    lines = text.splitlines()
    assert lines[0].startswith(f"VAT toward {result.target} (schwartz), {result.n_scenes} held-out")
    assert lines[1].split("|")[1].strip() == "probe" and set(lines[2]) <= {"|", "-", " "}
    lik = next(x for x in lines if x.startswith("| likelihood"))
    cells = [c.strip() for c in lik.split("|")[1:-1]]
    assert cells[1] == "step 10" and cells[2].startswith(fmt(result.gain) + " [")
    assert cells[4].startswith(fmt(result.gnd_l1_bc)) and cells[5] == fmt(result.gnd_l1_null)
    assert cells[7].startswith(fmt(result.nvat_offdiag_excess)) and cells[9] == "n/a"
    jud = next(x for x in lines if x.startswith("| judgment"))
    assert "near chance: 1 of 2 values" in jud and "n/a" in jud.split("|")[5]  # no gain, no GND
    assert lines[-1] == "Report: out/report.md"


def test_validity_flag():
    assert validity_flag(None) == "n/a"
    assert validity_flag(pd.DataFrame({"value": ["a"], "near_chance": [False]})) == "ok"
