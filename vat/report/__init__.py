"""Reporting for VAT results: console summary, Markdown report and PNG figures.

- one run: `summary_table` and `write_report` (`vat.report.run`), built from `vat.report.validity`,
  `vat.report.headline` (`methods_paragraph`, `interpretation`) and `vat.report.sections`;
  numbers are written by `vat.report.format`, the probe checks by `vat.report.checks`;
- a sweep: `vat.report.sweep.build_sweep_report`, from the cells' files (`vat.report.sweep_cells`),
  with its controls (`vat.report.controls`, `vat.report.frontier`);
- figures: `vat.report.figures` (one result; a sweep's tax matrix) and `vat.report.curves` (along
  an intervention's strength, over training, a sweep's trajectories), on `vat.report.plotting`.

The text functions are imported eagerly; the figure functions are loaded on first use, because
importing a figure module pulls in matplotlib and selects its headless Agg backend, which a caller
that only wants text (or has its own interactive backend) should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from vat.report.format import alpha_of, fmt, fmt_interval, fmt_p, fmt_ratio_interval
from vat.report.headline import interpretation, methods_paragraph
from vat.report.run import summary_table, write_report
from vat.report.sections import circumplex_sentence

if TYPE_CHECKING:
    from vat.report.curves import gain_tax_point, plot_curve, plot_gain_vs_tax
    from vat.report.figures import make_figures, plot_coupling, plot_shift_circumplex, plot_tau

#: The figure functions, loaded on first access: name -> its module.
_FIGURES = {
    "gain_tax_point": "vat.report.curves",
    "make_figures": "vat.report.figures",
    "plot_coupling": "vat.report.figures",
    "plot_curve": "vat.report.curves",
    "plot_gain_vs_tax": "vat.report.curves",
    "plot_shift_circumplex": "vat.report.figures",
    "plot_tau": "vat.report.figures",
}

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


def __getattr__(name: str) -> Any:
    # PEP 562 lazy attribute: the figure module (and matplotlib) loads on first access.
    if name in _FIGURES:
        return getattr(importlib.import_module(_FIGURES[name]), name)
    raise AttributeError(f"module 'vat.report' has no attribute {name!r}")
