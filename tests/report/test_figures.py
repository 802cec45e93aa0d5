"""`vat.report.figures` and `vat.report.curves`: every figure is a real PNG, even with one point and
no intervals."""

from pathlib import Path

from tests.report.helpers import assert_png
from vat.report import (
    plot_gain_vs_tax,
)


def test_figures_are_pngs(report_dir: Path, tmp_path: Path) -> None:
    for name in ("shift_circumplex", "tau", "coupling", "gain_vs_tax"):
        assert_png(report_dir / f"{name}.png")
    # One point, no intervals at all, into a folder that does not exist yet: still a figure.
    one = plot_gain_vs_tax([{"strength": 2, "gain": 0.3, "gnd": 0.1}], tmp_path / "a" / "one.png")
    assert_png(one)
