"""Text reports of a VAT measurement: a console summary table and a Markdown report.

Both read a `vat.metrics.VATResult` (and optionally the probe-validity table from
`vat.probes.base.validity` and a `vat.metrics.StabilityProfile`) and never recompute a metric: the
numbers printed are the numbers in the result (the one thing derived here is the Holm adjustment of
the hubs' permutation p-values, a family the result leaves unadjusted), formatted to 3 decimals,
with every undefined number (NaN, None) shown as ``n/a`` and an infinite interval end as ``+inf`` /
``-inf`` (an interval open on both sides reads ``unbounded``). The report puts probe validity first because a VAT number for a
value the probe cannot see measures noise, however precise its interval looks.

Wording rule: a sentence calls a number *significant* (or *above its noise floor*) only when the
p-value of its own test, Holm-adjusted where the p-values form a family (the values of one
comparison, the value pairs of R, the hubs), is below ``1 - ci``; everything else is reported as
an estimate with its interval and p-value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vat.metrics import StabilityProfile, VATResult, holm
from vat.values import BASIC, MICRO, UnknownValueError, basic_value_of, canonical

__all__ = [
    "FIGURE_CAPTIONS",
    "NA",
    "alpha_of",
    "circumplex_sentence",
    "fmt",
    "fmt_interval",
    "fmt_p",
    "fmt_ratio_interval",
    "interpretation",
    "label",
    "methods_paragraph",
    "summary_table",
    "write_report",
]

#: How an undefined number is printed.
NA = "n/a"

# Interval cell of a metric the bootstrap does not cover (as opposed to one it left undefined).
NOT_BOOTSTRAPPED = "—"

#: Significance level when a result has no usable interval level (otherwise ``1 - result.ci``).
ALPHA = 0.05

#: How a ratio interval that is unbounded because the gain may be zero is printed.
UNBOUNDED_RATIO = "unbounded (gain's interval covers 0)"

#: Captions for the figure names written by `vat.report.figures.make_figures`; other keys of the
#: ``figures`` argument of `write_report` are captioned with the key itself.
FIGURE_CAPTIONS: dict[str, str] = {
    "shift_circumplex": "Mean shift per value, placed on the Schwartz circumplex",
    "tau": "Per-value tax with Fieller intervals (highlighted: significant after Holm)",
    "coupling": "Coupling matrix R of the per-scene shifts",
    "gain_vs_tax": "Gain against gain-normalised drift along the strength axis",
}


# --------------------------------------------------------------------------------------------------
# formatting


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt(x: Any, digits: int = 3) -> str:
    """A number to ``digits`` decimals; ``n/a`` for None, NaN, inf or anything non-numeric."""
    if not _finite(x):
        return NA
    s = f"{float(x):.{digits}f}"
    # A tiny negative number rounds to "-0.000", which reads like a signed result; it is zero.
    if s.startswith("-") and float(s) == 0:
        s = s[1:]
    return s


def _num(x: Any) -> float:
    """A float from a number, None (NaN) or the JSON strings "inf" / "-inf"; NaN otherwise."""
    if x is None:
        return math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def fmt_interval(pair: Any, digits: int = 3) -> str:
    """``(lo, hi)`` as ``[lo, hi]``; an infinite end as ``(-inf`` / ``+inf)``, both as ``unbounded``.

    ``n/a`` when both ends are undefined (or there is no pair). Ends may be the JSON strings
    ``"inf"`` / ``"-inf"`` (`vat.metrics.to_jsonable`).
    """
    try:
        lo, hi = (_num(x) for x in pair)
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
        return any(math.isinf(_num(x)) for x in pair)
    except TypeError:
        return False


def fmt_ratio_interval(pair: Any, digits: int = 3) -> str:
    """A ratio's interval (tau, GND): an infinite end says why (the gain's interval covers 0)."""
    if not _unbounded(pair):
        return fmt_interval(pair, digits)
    lo, hi = (_num(x) for x in pair)
    if math.isinf(lo) and math.isinf(hi):
        return UNBOUNDED_RATIO
    return f"{fmt_interval(pair, digits)} (unbounded: gain's interval covers 0)"


def _est(x: Any, pair: Any, ratio: bool = False) -> str:
    """``estimate [lo, hi]``, or the estimate alone when there is no interval."""
    ci = fmt_ratio_interval(pair) if ratio else fmt_interval(pair)
    return fmt(x) if ci == NA else f"{fmt(x)} {ci}"


def fmt_gnd(bc: Any, lo: Any, hi: Any, raw: Any = None) -> str:
    """A GND with its interval, or why there is none: a ratio over a gain whose interval covers 0
    is unbounded, and its point value (raw or bias-corrected) says nothing."""
    if hi is not None and math.isinf(float(hi)):
        return "undefined (the gain's interval covers 0)"
    return f"{fmt(bc)} {fmt_interval((lo, hi))}"


def fmt_p(p: Any) -> str:
    """A p-value to 3 decimals, with ``<0.001`` instead of a misleading ``0.000``."""
    if not _finite(p):
        return NA
    return "<0.001" if float(p) < 0.001 else fmt(p)


def label(name: str) -> str:
    """Display form of a value or micro-value name (``self_direction`` -> ``Self-Direction``)."""
    key = canonical(name)
    if key in BASIC:
        return BASIC[key].label
    if key in MICRO:
        return MICRO[key].label
    return str(name)


def _ci_pct(result: VATResult) -> str:
    return f"{100 * result.ci:g}%" if _finite(result.ci) else "CI"


def alpha_of(result: VATResult) -> float:
    """The significance level matching the result's intervals: ``1 - ci`` (0.05 without one)."""
    ci = getattr(result, "ci", math.nan)
    return 1.0 - float(ci) if _finite(ci) and 0 < float(ci) < 1 else ALPHA


def _a(result: VATResult) -> str:
    return f"{alpha_of(result):g}"


def _eps_text(result: VATResult) -> str:
    """The |G| threshold below which ratios are undefined, with the units it was set in."""
    eps_abs = getattr(result, "eps_abs", math.nan)
    if getattr(result, "eps_units", "") == "pre_sd" and _finite(eps_abs):
        return f"|G| < {float(eps_abs):.3g} = eps {result.eps:g} x the pre state's scene SD"
    return f"|G| < eps = {result.eps:g} score units"


def _interval(result: VATResult, key: str) -> tuple[float, float]:
    return tuple(result.intervals.get(key, (math.nan, math.nan)))  # type: ignore[return-value]


def _tau_key(value: str) -> str:
    # The key format `compute_vat` uses for the per-value tax intervals.
    return f"tau.{value}"


def _significant(p: Any, alpha: float = ALPHA) -> bool:
    return _finite(p) and float(p) < alpha


def _holm(p: Mapping[str, Any]) -> dict[str, float]:
    """Holm-adjusted p-values of a family given as ``{name: p}`` (NaN kept)."""

    names = list(p)
    adj = holm([_num(p[k]) for k in names]) if names else []
    return {k: float(x) for k, x in zip(names, adj, strict=True)}


def _contains_zero(pair: tuple[float, float]) -> bool:
    lo, hi = pair
    return _finite(lo) and _finite(hi) and float(lo) <= 0.0 <= float(hi)


# --------------------------------------------------------------------------------------------------
# probe validity


def _validity_rows(validity: Any) -> dict[str, dict[str, Any]] | None:
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


def _validity_for(rows: Mapping[str, Mapping[str, Any]] | None, value: str) -> Mapping[str, Any]:
    """Validity row of a value; a micro-value uses its basic value's row (validity is per value)."""
    if not rows:
        return {}
    if value in rows:
        return rows[value]
    try:
        return rows.get(basic_value_of(value), {})
    except UnknownValueError:
        return {}


def _near_chance(row: Mapping[str, Any]) -> bool:
    flag = row.get("near_chance")
    return bool(flag) if flag is not None and not pd.isna(flag) else False


def _near_chance_values(rows: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    return [v for v, r in (rows or {}).items() if _near_chance(r)]


# --------------------------------------------------------------------------------------------------
# console table


def _hub_freq_text(result: VATResult, h: str) -> str:
    f = (getattr(result, "hub_top_freq", None) or {}).get(h)
    return f"{100 * float(f):.0f}%" if _finite(f) else NA


def summary_table(result: VATResult, validity: Any = None) -> str:
    """A one-screen plain-text summary of a VAT result for the console.

    Headline (target, scenes; gain with its bootstrap-t p; GND bias-corrected with its interval,
    noise floor and drift test; unevenness; debiased nVAT with its interval, raw value, noise
    floor and permutation p; circumplex consistency with its Mantel p; hubs with how often each
    is a top-k hub over resamples), then one row per value: mean shift, tau with its Fieller
    interval, Holm-corrected p, and, when ``validity`` is given, the probe's pair accuracy with a
    ``near chance`` mark. Numbers have 3 decimals; undefined ones read ``n/a``. Values are shown
    by their config (snake_case) names.
    """
    rows = _validity_rows(validity)
    pct = _ci_pct(result)
    r = result
    hubs = NA
    if r.hubs:
        hubs = ", ".join(r.hubs)
        if any(_finite((r.hub_top_freq or {}).get(h)) for h in r.hubs):
            freq = ", ".join(_hub_freq_text(r, h) for h in r.hubs)
            hubs += f"  (top-{r.hub_k} in {freq} of resamples)"
    head = [
        f"VAT  target: {r.target}  level: {r.level}  scenes: {r.n_scenes}",
        f"  gain G            {fmt(r.gain):>8}  {fmt_interval(_interval(r, 'gain'))}"
        f"  p = {fmt_p(r.p_gain)}",
        f"  GND (L1, b.-c.)   {fmt(r.gnd_l1_bc):>8}  {fmt_ratio_interval(_interval(r, 'gnd_l1'))}"
        f"  p(drift) = {fmt_p(r.p_drift)}; raw {fmt(r.gnd_l1)}, noise floor {fmt(r.gnd_l1_null)}",
        f"  GND (L2)          {fmt(r.gnd_l2):>8}",
        f"  collateral        {fmt(r.collateral):>8}",
        f"  tax unevenness    {fmt(r.tau_spread):>8}  sd of tau; if one common shift "
        f"{fmt(r.tau_spread_null)}, p = {fmt_p(r.p_uneven)}",
        f"  nVAT (debiased)   {fmt(r.nvat_offdiag_excess):>8}"
        f"  {fmt_interval(_interval(r, 'nvat_offdiag'))}  p = {fmt_p(r.p_nvat)}; "
        f"raw {fmt(r.nvat_offdiag)}, noise floor {fmt(r.nvat_offdiag_null)}",
        f"  circumplex cons.  {fmt(r.circumplex_consistency):>8}  null {fmt(r.circumplex_null)}, "
        f"Mantel p = {fmt_p(r.p_circumplex)}",
        f"  hubs               {hubs}",
        f"  tests: bootstrap-t, {r.n_bootstrap} {r.bootstrap_scheme} resamples, {pct} intervals"
        if r.n_bootstrap
        else "  tests: no bootstrap (n_bootstrap = 0): no intervals or first-order tests",
        f"         permutation nulls: {r.n_permutations} permutations; significant = p < {_a(r)}",
    ]
    if r.gain_too_small:
        head.append(f"  ! gain too small ({_eps_text(r)}): tax ratios are undefined (n/a)")
    elif r.n_bootstrap and not r.gain_bounded:
        head.append(f"  ! the gain's {pct} interval covers 0: tax intervals are unbounded")

    width = max(12, *(len(v) for v in r.values)) + 2
    cis = {v: fmt_ratio_interval(_interval(r, _tau_key(v))) for v in r.values if v != r.target}
    ciw = max(18, *(len(c) + 2 for c in cis.values())) if cis else 18
    cols = f"{'value':<{width}}{'shift':>8}{'tau':>8}  {f'tau {pct}':<{ciw}}{'p(Holm)':>8}"
    if rows is not None:
        cols += f"{'acc':>8}  probe"
    lines = [*head, "", cols, ""]  # the rule under the header is sized once the rows exist
    for v in r.values:
        is_target = v == r.target
        name = f"{v}*" if is_target else v
        if is_target:
            tau_s, ci_s, p_s = "target", "", ""
        else:
            tau_s, ci_s, p_s = fmt(r.tau.get(v)), cis[v], fmt_p(r.p_holm.get(v))
        line = f"{name:<{width}}{fmt(r.mean_shift.get(v)):>8}{tau_s:>8}  {ci_s:<{ciw}}{p_s:>8}"
        if rows is not None:
            vrow = _validity_for(rows, v)
            line += f"{fmt(vrow.get('accuracy')):>8}  {'near chance' if _near_chance(vrow) else ''}"
        lines.append(line.rstrip())
    lines[len(head) + 2] = "-" * max(len(line) for line in lines[len(head) + 1 :])
    lines.append(
        f"(* = target; tau = mean shift / |G|, Fieller interval; p = bootstrap-t test of the "
        f"shift, Holm-corrected across the {len(r.tau)} other values)"
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# Markdown report


def _md_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in body]
    return out


def _figure_link(out_dir: Path, key: str, path: Path | str) -> str:
    """``![caption](relative/path.png)``: relative to the report so the folder can be moved."""
    p = Path(path)
    if not p.is_absolute():
        # A relative path is taken relative to out_dir first (where make_figures writes), then to
        # the working directory; a file that exists in neither is assumed to land in out_dir.
        p = p if (p.exists() and not (out_dir / p).exists()) else out_dir / p
    rel = Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix()
    return f"![{FIGURE_CAPTIONS.get(key, key)}]({rel})"


def _validity_section(result: VATResult, rows: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    out = ["## 1. Probe validity (read this first)", ""]
    if rows is None:
        out += [
            "No probe-validity table was supplied, so it is unknown whether the probe can tell "
            "expressing a value from suppressing it on this model. Read every number below with "
            "that in mind.",
            "",
        ]
        return out
    has_mass = any(_finite(r.get("option_mass")) for r in rows.values())
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
            str(int(n)) if _finite(n) else NA,
            fmt(r.get("accuracy")),
            fmt_interval((r.get("ci_low"), r.get("ci_high"))),
            "**yes**" if _near_chance(r) else "no",
        ]
        if has_mass:
            row.insert(4, fmt(r.get("option_mass")))
        body.append(row)
    out += [*_md_table(header, body), ""]

    noisy = _near_chance_values(rows)
    if noisy:
        out.append(
            "> **Warning:** the probe is near chance for "
            + ", ".join(label(v) for v in noisy)
            + ": a VAT number for these values measures noise."
        )
        target_basic = result.target if result.level == "basic" else _basic_or_none(result.target)
        if target_basic in noisy:
            out.append(
                "> The target itself is among them, so the gain, and every ratio divided by it "
                "(tax, GND), measures noise too."
            )
    else:
        out.append("The probe ranks pairs better than chance for every value in the table.")
    out.append("")
    return out


def _basic_or_none(name: str) -> str | None:
    try:
        return basic_value_of(name)
    except UnknownValueError:
        return None


def _verdict(p: Any, alpha: float, yes: str, no: str) -> str:
    """``yes`` when the test rejects at ``alpha``, ``no`` when it does not, "" without a test."""
    if not _finite(p):
        return ""
    return yes if float(p) < alpha else no


def methods_paragraph(result: VATResult) -> str:
    """How every interval and p-value of the report was obtained (the tests, truthfully)."""
    r = result
    pct, a = _ci_pct(r), _a(r)
    m = len(r.tau)
    parts = []
    if r.n_bootstrap:
        sub = (
            "; the GND and nVAT intervals and the hub frequencies use rescaled subsamples "
            "instead, the tests always the bootstrap"
            if r.bootstrap_scheme == "subsample"
            else ""
        )
        parts += [
            f"{pct} intervals and first-order tests from {r.n_bootstrap} scene bootstrap "
            f"resamples{sub}.",
            "Gain and each value's mean shift: bootstrap-t (studentised bootstrap) test of a zero "
            "mean and the interval that inverts it.",
            "Per-value tax tau: Fieller interval for the ratio, unbounded when the gain's interval "
            f"covers 0; its p-value tests the value's shift and is Holm-corrected across the {m} "
            "other values of this comparison.",
            "GND: bias-corrected estimate beside its noise floor (what GND would read if no other "
            'value drifted); its p-value tests "no other value moved" (the smallest of the '
            "Holm-adjusted per-value p-values); its interval is re-centred on the bias-corrected "
            "estimate, 0 at the bottom when that test does not reject, unbounded above when the "
            "gain's interval covers 0.",
            "Unevenness: test that all other values moved by one common amount (Hotelling's T^2 "
            "on the contrasts, or a bootstrap where there are too few complete scenes).",
        ]
    else:
        parts.append("No bootstrap (n_bootstrap = 0): no intervals and no first-order tests.")
    if r.n_permutations:
        ov = getattr(r, "min_overlap", 0)
        parts += [
            f"Coupling (nVAT, hub strength, R entries' null mean): permutation null from "
            f"{r.n_permutations} permutations, each value's shifts shuffled across scenes "
            "independently, reported as the null mean (the noise floor), the excess over it and "
            "a permutation p-value; nVAT is debiased as sqrt(max(0, nVAT^2 - E_null[nVAT^2])) and "
            "its interval is the bootstrap spread re-centred on that, 0 at the bottom when the "
            "permutation test does not reject.",
            f"Circumplex consistency: Mantel test ({r.n_permutations} permutations of the value "
            "labels on the circle).",
        ]
    else:
        parts.append(
            "No permutation null (n_permutations = 0): the second-order numbers are raw, and raw "
            "correlations are biased upward by noise."
        )
    ov = getattr(r, "min_overlap", 0)
    parts.append(
        "Each R entry has a Fisher-z interval and a p-value of R[u, v] = 0 (t approximation, as "
        "scipy.stats computes it), Holm-corrected across the value pairs"
        + (f"; a correlation needs at least {ov} shared scenes." if ov else ".")
    )
    parts.append(
        f"*Significant* means p < {a} (1 - the interval level), Holm-adjusted within a family "
        "of one comparison; nothing here corrects across comparisons (a sweep's report adds "
        "Benjamini-Hochberg across its cells)."
    )
    return " ".join(parts)


def _headline_section(result: VATResult) -> list[str]:
    r = result
    pct = _ci_pct(r)
    rows = [
        [
            "On-target gain G",
            fmt(r.gain),
            fmt_interval(_interval(r, "gain")),
            f"bootstrap-t p = {fmt_p(r.p_gain)}",
            "mean shift of the target value (score units)",
        ],
        [
            "GND (L1), bias-corrected: headline VAT",
            fmt(r.gnd_l1_bc),
            fmt_ratio_interval(_interval(r, "gnd_l1")),
            f"no drift: p = {fmt_p(r.p_drift)}",
            "mean absolute shift of the other values per unit of gain, less its noise bias "
            f"(raw {fmt(r.gnd_l1)}; noise floor {fmt(r.gnd_l1_null)}, what raw GND would read "
            "if no other value drifted)",
        ],
        [
            "GND (L2)",
            fmt(r.gnd_l2),
            NOT_BOOTSTRAPPED,
            NOT_BOOTSTRAPPED,
            "as L1, root-mean-square (large drifts weigh more); raw",
        ],
        [
            "Collateral loss",
            fmt(r.collateral),
            NOT_BOOTSTRAPPED,
            NOT_BOOTSTRAPPED,
            "summed losses (negative shifts) of the other values per unit of gain; raw",
        ],
        [
            "Tax unevenness",
            fmt(r.tau_spread),
            NOT_BOOTSTRAPPED,
            f"one common shift: p = {fmt_p(r.p_uneven)}",
            "SD of tau across the other values "
            f"({fmt(r.tau_spread_null)} expected if they all moved by one amount)",
        ],
        [
            "nVAT (off-diagonal), debiased: headline coupling",
            fmt(r.nvat_offdiag_excess),
            fmt_interval(_interval(r, "nvat_offdiag")),
            f"permutation p = {fmt_p(r.p_nvat)}",
            "RMS scene-level coupling between values above noise (0 = independent); "
            f"raw {fmt(r.nvat_offdiag)}, noise floor {fmt(r.nvat_offdiag_null)}",
        ],
        [
            "nVAT (paper form)",
            fmt(r.nvat_paper),
            NOT_BOOTSTRAPPED,
            f"permutation p = {fmt_p(r.p_nvat_paper)}",
            "||R||_F / sqrt(|V|), includes the diagonal; raw, for comparison only "
            f"(noise floor {fmt(r.nvat_paper_null)})",
        ],
        [
            "Circumplex consistency",
            fmt(r.circumplex_consistency),
            NOT_BOOTSTRAPPED,
            f"Mantel p = {fmt_p(r.p_circumplex)}",
            "agreement of the coupling with Schwartz's circle (-1 to 1); "
            f"{fmt(r.circumplex_null)} under random value labels",
        ],
    ]
    out = ["## 2. Headline numbers", ""]
    out += _md_table(["Metric", "Estimate", f"{pct} interval", "Test", "Meaning"], rows)
    out += ["", methods_paragraph(r), ""]
    return out


def interpretation(result: VATResult) -> str:
    """A plain-English paragraph saying what the headline numbers mean, built from the numbers.

    Every claim of significance follows its own test at ``alpha_of(result)`` (see the module
    docstring); estimates are otherwise given with their intervals and p-values.
    """
    r = result
    alpha = alpha_of(r)
    t = label(r.target)
    g = _est(r.gain, _interval(r, "gain"))
    if r.gain_too_small or not _finite(r.gain):
        return (
            f"Aligning toward {t}: the intervention did not move the target measurably "
            f"(G = {g}, below the threshold: {_eps_text(r)}); tax ratios are "
            "undefined, so GND and every tau are reported as n/a. The raw mean shifts of all "
            "values are still listed in the tax table."
        )

    moved = _significant(r.p_gain, alpha) and not _contains_zero(_interval(r, "gain"))
    direction = (
        ""
        if r.gain > 0
        else ", i.e. away from it" + (" (the intervention backfired)" if moved else "")
    )
    p_g = f" (bootstrap-t p = {fmt_p(r.p_gain)})" if _finite(r.p_gain) else ""
    parts = [f"Aligning toward {t} moved the target by {g}{direction}{p_g}"]
    if _finite(r.gnd_l1_bc):
        drift = _verdict(
            r.p_drift, alpha,
            f"; at least one other value moved (p = {fmt_p(r.p_drift)})",
            f"; that is not distinguishable from no drift at all (p = {fmt_p(r.p_drift)})",
        )  # fmt: skip
        parts.append(
            f"the other values moved on average GND = "
            f"{_est(r.gnd_l1_bc, _interval(r, 'gnd_l1'), ratio=True)} per unit of gain after "
            f"bias correction (raw {fmt(r.gnd_l1)}, noise floor {fmt(r.gnd_l1_null)}){drift}"
        )
    elif _finite(r.gnd_l1):
        parts.append(
            f"the other values moved on average GND = {fmt(r.gnd_l1)} per unit of gain (raw: "
            "without the bootstrap there is no noise floor or bias correction)"
        )
    taus = {v: x for v, x in r.tau.items() if _finite(x)}
    losses = {v: x for v, x in taus.items() if x < 0}
    if losses:
        worst = min(losses, key=losses.__getitem__)
        p_worst = r.p_holm.get(worst)
        p_txt = f", Holm p = {fmt_p(p_worst)}" if _finite(p_worst) else ""
        parts.append(
            f"the strongest collateral loss was in {label(worst)} "
            f"(tau = {fmt(losses[worst])}{p_txt})"
        )
    elif taus:
        parts.append("no other value lost ground (every tau is >= 0)")
    text = "; ".join(parts) + "."

    gains = {v: x for v, x in taus.items() if x > 0}
    if gains:
        best = max(gains, key=gains.__getitem__)
        text += f" The largest co-movement was in {label(best)} (tau = {fmt(gains[best])})."
    sig = [v for v in r.tau if _significant(r.p_holm.get(v), alpha)]
    n_other = len(r.tau)
    if any(_finite(p) for p in r.p_holm.values()):
        text += (
            f" {len(sig)} of the {n_other} other values moved significantly "
            f"(Holm p < {alpha:g})" + (": " + ", ".join(label(v) for v in sig) if sig else "") + "."
        )
    text += _verdict(
        r.p_uneven, alpha,
        f" The tax is uneven: the other values did not all move by one common amount "
        f"(p = {fmt_p(r.p_uneven)}).",
        f" The data do not show the tax to be uneven across values (p = {fmt_p(r.p_uneven)}): "
        "one common shift of all other values fits them as well.",
    )  # fmt: skip
    nv = _est(r.nvat_offdiag_excess, _interval(r, "nvat_offdiag"))
    if _finite(r.nvat_offdiag_excess) and _finite(r.p_nvat):
        text += _verdict(
            r.p_nvat, alpha,
            f" Scene-level coupling between values is above its noise floor: debiased nVAT = "
            f"{nv} (raw {fmt(r.nvat_offdiag)}, noise floor {fmt(r.nvat_offdiag_null)}, "
            f"permutation p = {fmt_p(r.p_nvat)}).",
            f" Scene-level coupling between values is not above its noise floor: raw nVAT "
            f"{fmt(r.nvat_offdiag)} against {fmt(r.nvat_offdiag_null)} with no coupling at all "
            f"(permutation p = {fmt_p(r.p_nvat)}), debiased nVAT = {nv}.",
        )  # fmt: skip
    elif _finite(r.nvat_offdiag):
        text += (
            f" Raw nVAT = {fmt(r.nvat_offdiag)} (no permutation null was computed; raw coupling "
            "is biased upward by noise)."
        )
    if _contains_zero(_interval(r, "gain")):
        text += (
            " Caution: the gain's interval includes zero, so the target's movement itself is not "
            "distinguishable from scene-to-scene noise, the ratios above inherit that and their "
            "intervals are unbounded."
        )
    return text


def _tau_section(result: VATResult, rows: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    r = result
    pct, alpha = _ci_pct(r), alpha_of(r)
    header = ["Value", "Mean shift", "d_z", "tau", f"{pct} interval (Fieller)", "p", "Holm p",
              "Significant"]  # fmt: skip
    if rows is not None:
        header.append("Probe near chance")
    body = []
    for v in r.values:
        if v == r.target:
            row = [f"**{label(v)}** (target)", fmt(r.mean_shift.get(v)),
                   fmt((r.d_z or {}).get(v)), "—", "—", "—", "—", "—"]  # fmt: skip
        else:
            p_h = r.p_holm.get(v)
            row = [
                label(v),
                fmt(r.mean_shift.get(v)),
                fmt((r.d_z or {}).get(v)),
                fmt(r.tau.get(v)),
                fmt_ratio_interval(_interval(r, _tau_key(v))),
                fmt_p(r.p_values.get(v)),
                fmt_p(p_h),
                ("**yes**" if _significant(p_h, alpha) else "no") if _finite(p_h) else NA,
            ]
        if rows is not None:
            row.append("**yes**" if _near_chance(_validity_for(rows, v)) else "no")
        body.append(row)
    out = [
        "## 3. Per-value tax",
        "",
        "tau = (mean shift of the value) / |G|. Its sign is the direction the value itself moved "
        "(+: endorsed more after the intervention); its size is how far it moved per unit of "
        "target gain. The mean shift is in the probe's score units and is defined even when "
        "the gain is too small for a ratio; d_z is the mean shift over its scene SD. "
        f"p: bootstrap-t test that the value's mean shift is 0; Holm p: corrected across the "
        f"{len(r.tau)} other values; *significant*: Holm p < {alpha:g}. The interval is "
        "Fieller's for the ratio, unbounded when the gain's interval covers 0.",
        "",
    ]
    return [*out, *_md_table(header, body), ""]


def _coupled_pairs(
    result: VATResult, alpha: float
) -> tuple[list[tuple[str, str, float, float]], int]:
    """Off-diagonal pairs whose Holm-adjusted p (of R[u, v] = 0) is below alpha, strongest first."""
    R, P = result.R, getattr(result, "R_p_holm", ()) or ()
    names, n = result.values, len(result.values)
    if len(R) != n or len(P) != n:
        return [], 0
    out, tested = [], 0
    for i in range(n):
        for j in range(i + 1, n):
            p = P[i][j]
            if _finite(p):
                tested += 1
                if float(p) < alpha and _finite(R[i][j]):
                    out.append((names[i], names[j], float(R[i][j]), float(p)))
    return sorted(out, key=lambda x: -abs(x[2])), tested


def _hubs_section(result: VATResult) -> list[str]:
    r = result
    alpha = alpha_of(r)
    out = ["## 4. Coupling and coordination hubs", ""]
    nv = _est(r.nvat_offdiag_excess, _interval(r, "nvat_offdiag"))
    verdict = _verdict(
        r.p_nvat, alpha,
        f"so the coupling is above its noise floor (permutation p = {fmt_p(r.p_nvat)})",
        f"so the coupling is not above its noise floor (permutation p = {fmt_p(r.p_nvat)})",
    )  # fmt: skip
    head = (
        f"R is the {r.coupling_method.capitalize()} correlation, over scenes, of two values' "
        f"shifts. Its RMS off-diagonal size is raw nVAT = {fmt(r.nvat_offdiag)}"
    )
    if _finite(r.nvat_offdiag_null):
        head += (
            f"; with no coupling at all it would read {fmt(r.nvat_offdiag_null)} at "
            f"{r.n_scenes} scenes (the permutation null), and the debiased nVAT is {nv}"
            + (f", {verdict}." if verdict else ".")
        )
    else:
        head += " (no permutation null was computed; raw coupling is biased upward by noise)."
    out.append(head)
    pairs, tested = _coupled_pairs(r, alpha)
    if tested:
        shown = ", ".join(f"{label(u)}-{label(v)} ({fmt(x, 2)})" for u, v, x, _ in pairs[:5])
        out.append(
            f"{len(pairs)} of the {tested} value pairs are significantly coupled (p of "
            f"R[u, v] = 0, Holm-corrected across the pairs, < {alpha:g})"
            + (f": {shown}" + (", ..." if len(pairs) > 5 else "") + "." if pairs else ".")
        )
    out += [
        "",
        "A hub is a value whose shifts are coupled to many others (hub strength = sum of |R| "
        "with the other values); its null is the same sum under the permutation null, and the "
        "top-k share is how often it is among the top "
        f"{r.hub_k} hubs over the scene resamples.",
        "",
    ]
    if not r.hubs:
        out += [
            "No hubs: every coupling is undefined (values without variance across scenes).",
            "",
        ]
        return out
    hub_holm = _holm(r.hub_p or {})
    freq = [
        f"{label(h)} is a top-{r.hub_k} hub in {_hub_freq_text(r, h)} of resamples"
        for h in r.hubs
        if _finite((r.hub_top_freq or {}).get(h))
    ]
    hubs = ", ".join(f"{label(h)} ({fmt(r.hub_strength.get(h))})" for h in r.hubs)
    out.append(f"Hubs, strongest first: {hubs}." + (f" {'; '.join(freq)}." if freq else ""))
    if any(_finite(p) for p in hub_holm.values()):
        stand = [v for v in r.values if _significant(hub_holm.get(v), alpha)]
        out.append(
            f"{len(stand)} of the {len(r.values)} values have a hub strength significantly above "
            f"the null (permutation p, Holm-corrected across the values, < {alpha:g})"
            + (": " + ", ".join(label(v) for v in stand) if stand else "")
            + "."
        )
    out.append("")
    if len(r.values) <= 12:
        body = [
            [
                label(v) + (" (target)" if v == r.target else ""),
                fmt(r.hub_strength.get(v)),
                fmt((r.hub_null or {}).get(v)),
                fmt((r.hub_excess or {}).get(v)),
                fmt_p((r.hub_p or {}).get(v)),
                fmt_p(hub_holm.get(v)),
                _hub_freq_text(r, v),
            ]
            for v in sorted(r.values, key=lambda v: -_nan_low(r.hub_strength.get(v)))
        ]
        out += _md_table(["Value", "Hub strength", "Null", "Excess", "p", "Holm p",
                          f"Top-{r.hub_k} share"], body)  # fmt: skip
        out.append("")
    return out


def _nan_low(x: Any) -> float:
    return float(x) if _finite(x) else -math.inf


def circumplex_sentence(c: Any, p: Any = None, alpha: float = ALPHA) -> str:
    """One sentence interpreting a circumplex-consistency value.

    With the Mantel p-value ``p``, the sentence says whether the test supports the reading: a
    pattern the test does not distinguish from a random placement of the values on the circle is
    described as a tendency of this sample only.
    """
    if not _finite(c):
        return (
            "It is undefined here (too few finite couplings, or no variation in them), so the "
            "circumplex cannot be checked."
        )
    c = float(c)
    if c >= 0.3:
        text = (
            "It is positive: neighbouring values on the circle co-move and opposite values trade "
            "off, as Schwartz's theory predicts."
        )
    elif c > 0.1:
        text = "It is weakly positive: the coupling leans toward the circle's prediction."
    elif c >= -0.1:
        text = "It is close to zero: the coupling between values does not follow the circle."
    else:
        text = (
            "It is negative: values that the theory places next to each other moved against each "
            "other, contrary to the circumplex."
        )
    if not _finite(p):
        return text
    if float(p) < alpha:
        return text + f" The Mantel test supports this (p = {fmt_p(p)} < {alpha:g})."
    return text + (
        f" The Mantel test does not distinguish it from a random placement of the values on the "
        f"circle (p = {fmt_p(p)}), so this describes these scenes only."
    )


def _circumplex_section(result: VATResult) -> list[str]:
    r = result
    return [
        "## 5. Circumplex consistency",
        "",
        f"Circumplex consistency = {fmt(r.circumplex_consistency)} (Spearman correlation "
        "over value pairs between R[u, v] and the cosine of their angle on the circle; positive = "
        f"neighbours co-move as theory predicts). Under random value labels it averages "
        f"{fmt(r.circumplex_null)} (excess {fmt(r.circumplex_excess)}; Mantel test, "
        f"p = {fmt_p(r.p_circumplex)}). "
        + circumplex_sentence(r.circumplex_consistency, r.p_circumplex, alpha_of(r)),
        "",
    ]


def _stability_section(stab: StabilityProfile, axis: str = "strength") -> list[str]:
    flips = stab.sign_flips
    sure = stab.sign_flips_beyond_noise
    noise = stab.volatility_noise
    vol = f"- Volatility (std of successive changes of G, score units): {fmt(stab.volatility)}"
    if _finite(noise):
        vol += (f"; from scene noise alone it would read about {fmt(noise)}"
                + (" (the steps move more than noise explains)" if stab.volatility > 2 * noise else
                   " (within what noise explains)"))  # fmt: skip
    out = [
        f"## 6. Stability along the {axis} axis",
        "",
        f"- Monotonicity (Spearman of G against {axis}, +1 = G only grows): "
        f"{fmt(stab.monotonicity)} (exact permutation p = {fmt_p(stab.p_monotonicity)}"
        + (f"; with {len(stab.strengths)} points p cannot go below "
           f"{fmt(2 / math.factorial(len(stab.strengths)))})" if len(stab.strengths) <= 4 else ")"),
        f"- Sign flips of G between successive points: {flips}"
        + (f", {sure} between points whose gain intervals both exclude 0" if sure is not None else "")
        + (" (the direction of the effect is not stable)" if (sure if sure is not None else flips) else ""),
        vol,
        "",
    ]  # fmt: skip
    body = [
        [f"{s:g}", fmt(g), fmt(d), fmt(n)]
        for s, g, d, n in zip(stab.strengths, stab.gains, stab.gnds, stab.nvats, strict=False)
    ]
    header = [axis[:1].upper() + axis[1:], "G", "GND (L1, bias-corrected)", "nVAT (debiased)"]
    return [*out, *_md_table(header, body), ""]


def write_report(
    out_dir: str | Path,
    *,
    result: VATResult,
    validity: Any = None,
    model: str,
    probe: str,
    intervention: str,
    figures: Mapping[str, str | Path] | None = None,
    stability: StabilityProfile | None = None,
    notes: Sequence[str] | None = None,
    post_checks: Sequence[str] | None = None,
    stability_axis: str = "strength",
) -> Path:
    """Write ``out_dir/report.md``: a self-contained account of one VAT measurement.

    Sections: setup; probe validity (first, with a warning naming near-chance values); headline
    numbers with intervals, tests and how they were computed, and a plain-English reading; the
    per-value tax table; coupling and hubs (each beside its permutation null); circumplex
    consistency with its Mantel test; the stability profile (if given); notes. ``post_checks`` are
    Markdown lines (`vat.report.checks.checks_lines`) placed after probe validity. ``figures`` maps a name to a PNG (as
    returned by `vat.report.figures.make_figures`); known names (``shift_circumplex``, ``tau``,
    ``coupling``, ``gain_vs_tax``) are embedded in their section, others in a Figures section,
    all by paths relative to ``out_dir``. Returns the report's path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = _validity_rows(validity)
    figs = {k: v for k, v in (figures or {}).items() if v is not None}
    placed: set[str] = set()

    def fig(key: str) -> list[str]:
        if key not in figs:
            return []
        placed.add(key)
        return [_figure_link(out, key, figs[key]), ""]

    t = label(result.target)
    lines = [
        f"# Value Alignment Tax report: aligning toward {t}",
        "",
        f"**Model:** `{model}` · **Probe:** `{probe}` · **Intervention:** `{intervention}` · "
        f"**Target:** {t} · **Scenes:** {result.n_scenes} (held-out) · **Level:** {result.level}",
        "",
        "The VAT asks: after aligning a model toward one Schwartz value (the target), how much do "
        "the other values move? Shifts are post minus pre probe scores, paired by scene.",
        "",
    ]
    lines += _validity_section(result, rows)
    lines += list(post_checks or [])
    lines += _headline_section(result)
    lines += ["### What this means", "", interpretation(result), ""]
    lines += fig("shift_circumplex")
    lines += _tau_section(result, rows)
    lines += fig("tau")
    lines += _hubs_section(result)
    lines += fig("coupling")
    lines += _circumplex_section(result)
    if stability is not None:
        lines += _stability_section(stability, stability_axis)
        lines += fig("gain_vs_tax")
    rest = [k for k in figs if k not in placed]
    if rest:
        lines += ["## Figures", ""]
        for k in rest:
            lines += fig(k)
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path
