"""How every report writes its numbers: estimates, intervals, p-values, value names, Markdown tables.

One run's report, the sweep report, its controls and frontier sections and the probe checks all
format through this module, so the same number reads the same everywhere: 3 decimals, every
undefined number (NaN, None) as ``n/a``, an infinite interval end as ``+inf`` / ``-inf`` (an
interval open on both sides as ``unbounded``), a p-value below 0.001 as ``<0.001``; and no table
cell breaks its Markdown table with a ``|``.

It also holds the few readings of a `vat.metrics.VATResult` the text sections share (its interval
level, its significance level, an interval by key) and the wording rule's test: a sentence calls a
number *significant* only when the p-value of its own test is below ``1 - ci``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from vat.metrics import VATResult
from vat.taxonomy import display_label, parent_value

#: How an undefined number is printed.
NA = "n/a"

#: Interval cell of a metric the bootstrap does not cover (as opposed to one it left undefined).
NOT_BOOTSTRAPPED = "—"

#: Significance level when a result has no usable interval level (otherwise ``1 - result.ci``).
ALPHA = 0.05

#: How a ratio interval that is unbounded because the gain may be zero is printed.
UNBOUNDED_RATIO = "unbounded (gain's interval covers 0)"


# --------------------------------------------------------------------------------------------------
# numbers


def finite(x: Any) -> bool:
    """True for a finite number (or a string that reads as one)."""
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x: Any) -> float:
    """A float from a number, None (NaN) or the JSON strings "inf" / "-inf"; NaN otherwise."""
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def fmt(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` decimals; ``n/a`` for None, NaN, inf or anything non-numeric."""
    if not finite(x):
        return NA
    s = f"{float(x):.{digits}f}"
    # A tiny negative number rounds to "-0.000", which reads like a signed result; it is zero.
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s


def fmt_interval(pair: Any, digits: int = 3) -> str:
    """``(lo, hi)`` as ``[lo, hi]``; an infinite end as ``(-inf`` / ``+inf)``, both as ``unbounded``.

    ``n/a`` when both ends are undefined (or there is no pair). Ends may be the JSON strings
    ``"inf"`` / ``"-inf"`` (`vat.metrics.to_jsonable`).
    """
    try:
        lo, hi = (num(x) for x in pair)
    except (TypeError, ValueError):
        return NA
    if math.isnan(lo) and math.isnan(hi):
        return NA
    if math.isinf(lo) and math.isinf(hi):
        return "unbounded"
    left = "(-inf" if lo == -math.inf else ("(+inf" if lo == math.inf else f"[{fmt(lo, digits)}")
    right = "+inf)" if hi == math.inf else ("-inf)" if hi == -math.inf else f"{fmt(hi, digits)}]")
    return f"{left}, {right}"


def _unbounded(pair: Any) -> bool:
    try:
        return any(math.isinf(num(x)) for x in pair)
    except TypeError:
        return False


def fmt_ratio_interval(pair: Any, digits: int = 3) -> str:
    """A ratio's interval (tau, GND): an infinite end says why (the gain's interval covers 0)."""
    if not _unbounded(pair):
        return fmt_interval(pair, digits)
    lo, hi = (num(x) for x in pair)
    if math.isinf(lo) and math.isinf(hi):
        return UNBOUNDED_RATIO
    return f"{fmt_interval(pair, digits)} (unbounded: gain's interval covers 0)"


def fmt_estimate(x: Any, pair: Any) -> str:
    """An estimate and its interval, for a table cell: ``x [lo, hi]`` (``x n/a`` without one)."""
    return f"{fmt(x)} {fmt_interval(pair)}"


def estimate_text(x: Any, pair: Any, ratio: bool = False) -> str:
    """An estimate and its interval, for a sentence: the estimate alone when there is no interval;
    ``ratio``: the interval of a ratio (`fmt_ratio_interval`)."""
    ci = fmt_ratio_interval(pair) if ratio else fmt_interval(pair)
    return fmt(x) if ci == NA else f"{fmt(x)} {ci}"


def fmt_gnd(bc: Any, lo: Any, hi: Any, raw: Any = None) -> str:
    """A GND with its interval, or why there is none: a ratio over a gain whose interval covers 0
    is unbounded, and its point value (raw or bias-corrected) says nothing."""
    if hi is not None and math.isinf(float(hi)):
        return "undefined (the gain's interval covers 0)"
    return fmt_estimate(bc, (lo, hi))


def fmt_p(p: Any) -> str:
    """A p-value to 3 decimals, with ``<0.001`` instead of a misleading ``0.000``."""
    if not finite(p):
        return NA
    return "<0.001" if float(p) < 0.001 else fmt(p)


# --------------------------------------------------------------------------------------------------
# value names


def label(name: str) -> str:
    """Display form of a value or micro-value name (``self_direction`` -> ``Self-Direction``),
    from the bundled taxonomies (`vat.taxonomy.display_label`)."""
    return display_label(name)


def basic_of(name: str) -> str | None:
    """The value of a value or micro-value name (a value is its own); None if no taxonomy has it."""
    return parent_value(name)


# --------------------------------------------------------------------------------------------------
# reading a result


def alpha_for(ci: Any) -> float:
    """The significance level of an interval level: ``1 - ci`` (`ALPHA` without a usable one)."""
    return 1.0 - float(ci) if finite(ci) and 0 < float(ci) < 1 else ALPHA


def alpha_of(result: VATResult) -> float:
    """The significance level matching the result's intervals: ``1 - ci`` (0.05 without one)."""
    return alpha_for(getattr(result, "ci", math.nan))


def alpha_text(result: VATResult) -> str:
    """`alpha_of` as written in a sentence (``0.05``)."""
    return f"{alpha_of(result):g}"


def ci_pct(result: VATResult) -> str:
    """The result's interval level as a percentage (``95%``), or ``CI`` without one."""
    return f"{100 * result.ci:g}%" if finite(result.ci) else "CI"


def eps_text(result: VATResult) -> str:
    """The |G| threshold below which ratios are undefined, with the units it was set in."""
    eps_abs = getattr(result, "eps_abs", math.nan)
    if getattr(result, "eps_units", "") == "pre_sd" and finite(eps_abs):
        return f"|G| < {float(eps_abs):.3g} = eps {result.eps:g} x the pre state's scene SD"
    return f"|G| < eps = {result.eps:g} score units"


def interval(result: VATResult, key: str) -> tuple[float, float]:
    """The result's interval ``key`` (``gain``, ``gnd_l1``, `tau_key` ...), NaN ends when absent."""
    return tuple(result.intervals.get(key, (math.nan, math.nan)))  # type: ignore[return-value]


def tau_key(value: str) -> str:
    # The key format `compute_vat` uses for the per-value tax intervals.
    return f"tau.{value}"


def hub_freq_text(result: VATResult, h: str) -> str:
    """How often ``h`` is a top-k hub over the resamples, as a percentage."""
    f = (getattr(result, "hub_top_freq", None) or {}).get(h)
    return f"{100 * float(f):.0f}%" if finite(f) else NA


def significant(p: Any, alpha: float = ALPHA) -> bool:
    return finite(p) and float(p) < alpha


def verdict(p: Any, alpha: float, yes: str, no: str) -> str:
    """``yes`` when the test rejects at ``alpha``, ``no`` when it does not, "" without a test."""
    if not finite(p):
        return ""
    return yes if float(p) < alpha else no


def contains_zero(pair: tuple[float, float]) -> bool:
    lo, hi = pair
    return finite(lo) and finite(hi) and float(lo) <= 0.0 <= float(hi)


# --------------------------------------------------------------------------------------------------
# Markdown tables


def md_table(header: Sequence[Any], body: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines; a ``|`` inside a cell is escaped so it cannot split the cell."""

    def row(cells: Iterable[Any]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [row(header), "|" + "|".join("---" for _ in header) + "|", *(row(r) for r in body)]


def md_frame(df: pd.DataFrame) -> list[str]:
    """A DataFrame as a Markdown table (its columns the header) and a blank line; ``_none_`` when
    it has no rows."""
    if df.empty:
        return ["_none_", ""]
    return [*md_table(list(df.columns), df.itertuples(index=False)), ""]
