"""Reporting for VAT results: console summary, Markdown report and PNG figures.

`summary_table` and `write_report` (text) are imported eagerly; the figure functions are loaded on
first use, because importing `vat.report.figures` pulls in matplotlib and selects its headless Agg
backend, which a caller that only wants text (or has its own interactive backend) should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vat.report.markdown import (
    alpha_of,
    circumplex_sentence,
    fmt,
    fmt_interval,
    fmt_p,
    fmt_ratio_interval,
    interpretation,
    methods_paragraph,
    summary_table,
    write_report,
)

if TYPE_CHECKING:
    from vat.report.figures import (
        gain_tax_point,
        make_figures,
        plot_coupling,
        plot_curve,
        plot_gain_vs_tax,
        plot_shift_circumplex,
        plot_tau,
    )

__all__ = [
    "alpha_of",
    "circumplex_sentence",
    "fmt",
    "fmt_interval",
    "fmt_p",
    "fmt_ratio_interval",
    "gain_tax_point",
    "interpretation",
    "make_figures",
    "methods_paragraph",
    "plot_coupling",
    "plot_curve",
    "plot_gain_vs_tax",
    "plot_shift_circumplex",
    "plot_tau",
    "summary_table",
    "write_report",
]

_FIGURES = {
    "gain_tax_point",
    "make_figures",
    "plot_coupling",
    "plot_curve",
    "plot_gain_vs_tax",
    "plot_shift_circumplex",
    "plot_tau",
}


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attribute: the figures module (and matplotlib) loads on first access.
    if name in _FIGURES:
        return getattr(importlib.import_module("vat.report.figures"), name)
    raise AttributeError(f"module 'vat.report' has no attribute {name!r}")
