"""The end of a run speaks to the user: one short results table per probe, and where the report is.

As lm-evaluation-harness ends with its results table, ``train.py`` and ``evaluate.py`` end with
`results_table`: per probe, the gain with its interval and p, the bias-corrected GND with its
interval against its noise floor, the debiased nVAT with its interval and p, and whether the probe
can see the values at all (pairs it ranks at chance). The full report is one path away.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vat.metrics import VATResult
from vat.report.format import ci_pct, fmt, fmt_interval, fmt_p, fmt_ratio_interval, interval

HEADER = ("probe", "point", "gain [CI]", "p", "GND b.-c. [CI]", "floor", "p(drift)",
          "nVAT debiased [CI]", "p(nVAT)", "probe validity")  # fmt: skip


def validity_flag(validity: Any) -> str:
    """``ok``, or how many values the probe ranks at chance (their numbers measure noise)."""
    if validity is None or len(validity) == 0:
        return "n/a"
    near = [str(v) for v, c in zip(validity["value"], validity["near_chance"], strict=True) if c]
    return "ok" if not near else f"near chance: {len(near)} of {len(validity)} values"


def results_table(rows: Mapping[str, tuple[str, VATResult, Any]], report: Path | str) -> str:
    """``rows``: probe -> (point, result, validity table or None); ``report``: the report's path."""
    body = []
    for probe, (point, r, valid) in rows.items():
        body.append((probe, point,
                     f"{fmt(r.gain)} {fmt_interval(interval(r, 'gain'))}", fmt_p(r.p_gain),
                     f"{fmt(r.gnd_l1_bc)} {fmt_ratio_interval(interval(r, 'gnd_l1'))}",
                     fmt(r.gnd_l1_null), fmt_p(r.p_drift),
                     f"{fmt(r.nvat_offdiag_excess)} {fmt_interval(interval(r, 'nvat_offdiag'))}",
                     fmt_p(r.p_nvat), validity_flag(valid)))  # fmt: skip
    widths = [max(len(str(x)) for x in col) for col in zip(HEADER, *body, strict=True)]

    def line(cells) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    first = next(iter(rows.values()))[1] if rows else None
    title = (f"VAT toward {first.target} ({first.taxonomy}), {first.n_scenes} held-out scenes, "
             f"{ci_pct(first)} intervals" if first else "VAT: no result")  # fmt: skip
    gain_note = ("GND and tau are undefined where the gain is below eps; read nothing into a "
                 "ratio whose gain interval covers 0.")  # fmt: skip
    return "\n".join([title, line(HEADER), line(["-" * w for w in widths]),
                      *map(line, body), gain_note, f"Report: {report}"])  # fmt: skip
