"""Probe validity in a run's report: can the probe see each value at all?

Reads the validity table of `vat.probes.base.validity` (per value: the share of express/suppress
pairs the probe ranks the right way, its interval, a ``near_chance`` flag) for the report's first
section, the tax table's "probe near chance" column and the console summary's ``acc`` column. It
comes first in the report because a VAT number for a value the probe cannot see measures noise,
however precise its interval looks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from vat.metrics import VATResult
from vat.report.format import NA, basic_of, finite, fmt, fmt_interval, label, md_table
from vat.taxonomy import canonical

Rows = Mapping[str, Mapping[str, Any]]


def validity_rows(validity: Any) -> dict[str, dict[str, Any]] | None:
    """The validity table as ``{canonical value: row}``; None when not given or empty.

    Accepts the DataFrame of `vat.probes.base.validity` or anything `pandas.DataFrame` takes
    (a list of row dicts, a dict of columns).
    """
    if validity is None:
        return None
    df = validity if isinstance(validity, pd.DataFrame) else pd.DataFrame(validity)
    if df.empty or "value" not in df.columns:
        return None
    return {canonical(str(r["value"])): dict(r) for r in df.to_dict("records")}


def validity_for(rows: Rows | None, value: str) -> Mapping[str, Any]:
    """Validity row of a value; a micro-value uses its basic value's row (validity is per value)."""
    if not rows:
        return {}
    if value in rows:
        return rows[value]
    return rows.get(basic_of(value), {})


def near_chance(row: Mapping[str, Any]) -> bool:
    flag = row.get("near_chance")
    return bool(flag) if flag is not None and not pd.isna(flag) else False


def validity_section(result: VATResult, rows: Rows | None) -> list[str]:
    out = ["## 1. Probe validity (read this first)", ""]
    if rows is None:
        out += [
            "No probe-validity table was supplied, so it is unknown whether the probe can tell "
            "expressing a value from suppressing it on this model. Read every number below with "
            "that in mind.",
            "",
        ]
        return out
    has_mass = any(finite(r.get("option_mass")) for r in rows.values())
    out += [
        "Before any VAT number: can the probe see each value on the pre model? *Accuracy* is the "
        "share of (express, suppress) action pairs the probe ranks the right way (0.5 = chance), "
        "with its interval; a value is *near chance* when that interval contains 0.5."
        + (
            " *Option mass* is the probability the model puts on the rating tokens (low: the "
            "answer format is not followed)."
            if has_mass
            else ""
        ),
        "",
    ]
    header = ["Value", "Pairs", "Accuracy", "Interval", "Near chance"]
    if has_mass:
        header.insert(4, "Option mass")
    body = []
    for v, r in rows.items():
        n = r.get("n_pairs")
        row = [
            label(v) + (" (target)" if v == result.target else ""),
            str(int(n)) if finite(n) else NA,
            fmt(r.get("accuracy")),
            fmt_interval((r.get("ci_low"), r.get("ci_high"))),
            "**yes**" if near_chance(r) else "no",
        ]
        if has_mass:
            row.insert(4, fmt(r.get("option_mass")))
        body.append(row)
    out += [*md_table(header, body), ""]

    noisy = [v for v, r in rows.items() if near_chance(r)]
    if noisy:
        out.append(
            "> **Warning:** the probe is near chance for "
            + ", ".join(label(v) for v in noisy)
            + ": a VAT number for these values measures noise."
        )
        target_basic = result.target if result.level == "basic" else basic_of(result.target)
        if target_basic in noisy:
            out.append(
                "> The target itself is among them, so the gain, and every ratio divided by it "
                "(tax, GND), measures noise too."
            )
    else:
        out.append("The probe ranks pairs better than chance for every value in the table.")
    out.append("")
    return out
