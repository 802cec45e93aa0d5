"""Text reports of a VAT measurement: a console summary table and a Markdown report.

Both read a `vat.metrics.VATResult` (and optionally the probe-validity table from
`vat.probes.base.validity` and a `vat.metrics.StabilityProfile`) and never recompute a metric: the
numbers printed are the numbers in the result, formatted to 3 decimals, with every undefined number
(NaN, None, inf) shown as ``n/a``. The report puts probe validity first because a VAT number for a
value the probe cannot see measures noise, however precise its interval looks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from vat.metrics import StabilityProfile, VATResult
from vat.values import BASIC, MICRO, UnknownValueError, basic_value_of, canonical

__all__ = [
    "FIGURE_CAPTIONS",
    "NA",
    "circumplex_sentence",
    "fmt",
    "fmt_interval",
    "fmt_p",
    "interpretation",
    "label",
    "summary_table",
    "write_report",
]

#: How an undefined number is printed.
NA = "n/a"

# Interval cell of a metric the bootstrap does not cover (as opposed to one it left undefined).
NOT_BOOTSTRAPPED = "—"

#: Significance level for the Holm-corrected sign-flip p-values.
ALPHA = 0.05

#: Captions for the figure names written by `vat.report.figures.make_figures`; other keys of the
#: ``figures`` argument of `write_report` are captioned with the key itself.
FIGURE_CAPTIONS: dict[str, str] = {
    "shift_circumplex": "Mean shift per value, placed on the Schwartz circumplex",
    "tau": "Per-value tax with intervals (highlighted: Holm p < 0.05)",
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


def fmt_interval(pair: Any, digits: int = 3) -> str:
    """``(lo, hi)`` as ``[lo, hi]``; ``n/a`` when both ends are undefined (or there is no pair)."""
    try:
        lo, hi = pair
    except (TypeError, ValueError):
        return NA
    if not _finite(lo) and not _finite(hi):
        return NA
    return f"[{fmt(lo, digits)}, {fmt(hi, digits)}]"


def _est(x: Any, pair: Any) -> str:
    """``estimate [lo, hi]``, or the estimate alone when there is no interval."""
    ci = fmt_interval(pair)
    return fmt(x) if ci == NA else f"{fmt(x)} {ci}"


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


def _interval(result: VATResult, key: str) -> tuple[float, float]:
    return tuple(result.intervals.get(key, (math.nan, math.nan)))  # type: ignore[return-value]


def _tau_key(value: str) -> str:
    # The key format `compute_vat` uses for the per-value tax intervals.
    return f"tau.{value}"


def _significant(p: Any) -> bool:
    return _finite(p) and float(p) < ALPHA


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


def summary_table(result: VATResult, validity: Any = None) -> str:
    """A one-screen plain-text summary of a VAT result for the console.

    Headline (target, scenes, gain, GND, nVAT with their intervals, circumplex consistency, hubs),
    then one row per value: mean shift, tau with its interval, Holm-corrected p, and, when
    ``validity`` is given, the probe's pair accuracy with a ``near chance`` mark. Numbers have 3
    decimals; undefined ones read ``n/a``. Values are shown by their config (snake_case) names.
    """
    rows = _validity_rows(validity)
    pct = _ci_pct(result)
    head = [
        f"VAT  target: {result.target}  level: {result.level}  scenes: {result.n_scenes}",
        f"  gain G           {fmt(result.gain):>8}  {fmt_interval(_interval(result, 'gain'))}"
        f"  (sign-flip p = {fmt_p(result.p_gain)})",
        f"  GND (L1)         {fmt(result.gnd_l1):>8}  {fmt_interval(_interval(result, 'gnd_l1'))}",
        f"  GND (L2)         {fmt(result.gnd_l2):>8}",
        f"  collateral       {fmt(result.collateral):>8}",
        f"  nVAT (offdiag)   {fmt(result.nvat_offdiag):>8}"
        f"  {fmt_interval(_interval(result, 'nvat_offdiag'))}",
        f"  circumplex cons. {fmt(result.circumplex_consistency):>8}",
        f"  hubs             {', '.join(result.hubs) if result.hubs else NA}",
        f"  intervals: {pct} {result.bootstrap_scheme}, {result.n_bootstrap} resamples"
        if result.n_bootstrap
        else "  intervals: not computed (n_bootstrap = 0)",
    ]
    if result.gain_too_small:
        head.append(
            f"  ! gain too small (|G| < eps = {result.eps:g}): tax ratios are undefined (n/a)"
        )

    width = max(12, *(len(v) for v in result.values)) + 2
    cols = f"{'value':<{width}}{'shift':>8}{'tau':>8}  {f'tau {pct}':<18}{'p(Holm)':>8}"
    if rows is not None:
        cols += f"{'acc':>8}  probe"
    lines = [*head, "", cols, ""]  # the rule under the header is sized once the rows exist
    for v in result.values:
        is_target = v == result.target
        name = f"{v}*" if is_target else v
        if is_target:
            tau_s, ci_s, p_s = "target", "", ""
        else:
            tau_s = fmt(result.tau.get(v))
            ci_s = fmt_interval(_interval(result, _tau_key(v)))
            p_s = fmt_p(result.p_holm.get(v))
        line = f"{name:<{width}}{fmt(result.mean_shift.get(v)):>8}{tau_s:>8}  {ci_s:<18}{p_s:>8}"
        if rows is not None:
            vrow = _validity_for(rows, v)
            line += f"{fmt(vrow.get('accuracy')):>8}  {'near chance' if _near_chance(vrow) else ''}"
        lines.append(line.rstrip())
    lines[len(head) + 2] = "-" * max(len(line) for line in lines[len(head) + 1 :])
    lines.append("(* = target; tau = mean shift / |G|; p = sign-flip test, Holm-corrected)")
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


def _headline_section(result: VATResult) -> list[str]:
    pct = _ci_pct(result)
    rows = [
        [
            "On-target gain G",
            fmt(result.gain),
            fmt_interval(_interval(result, "gain")),
            "mean shift of the target value (score units)",
        ],
        [
            "GND (L1), headline VAT",
            fmt(result.gnd_l1),
            fmt_interval(_interval(result, "gnd_l1")),
            "mean absolute shift of the other values per unit of gain",
        ],
        [
            "GND (L2)",
            fmt(result.gnd_l2),
            NOT_BOOTSTRAPPED,
            "as L1, root-mean-square (large drifts weigh more)",
        ],
        [
            "Collateral loss",
            fmt(result.collateral),
            NOT_BOOTSTRAPPED,
            "summed losses (negative shifts) of the other values per unit of gain",
        ],
        [
            "nVAT (off-diagonal)",
            fmt(result.nvat_offdiag),
            fmt_interval(_interval(result, "nvat_offdiag")),
            "RMS scene-level coupling between values (0 = independent)",
        ],
        [
            "nVAT (paper form)",
            fmt(result.nvat_paper),
            NOT_BOOTSTRAPPED,
            "||R||_F / sqrt(|V|), includes the diagonal; for comparison only",
        ],
        [
            "Circumplex consistency",
            fmt(result.circumplex_consistency),
            NOT_BOOTSTRAPPED,
            "agreement of the coupling with Schwartz's circle (-1 to 1)",
        ],
    ]
    perm = "exact" if result.permutation_exact else "Monte Carlo"
    boot = (
        f"{pct} intervals from {result.n_bootstrap} scene {result.bootstrap_scheme} resamples"
        if result.n_bootstrap
        else "no intervals (bootstrap skipped)"
    )
    out = ["## 2. Headline numbers", ""]
    out += _md_table(["Metric", "Estimate", f"{pct} interval", "Meaning"], rows)
    out += [
        "",
        f"{boot}; p-values from a sign-flip test over scenes ({result.n_permutations} sign "
        f"patterns, {perm}), Holm-corrected across values. The gain's own sign-flip p-value is "
        f"{fmt_p(result.p_gain)}.",
        "",
    ]
    return out


def interpretation(result: VATResult) -> str:
    """A plain-English paragraph saying what the headline numbers mean, built from the numbers."""
    t = label(result.target)
    g = _est(result.gain, _interval(result, "gain"))
    if result.gain_too_small or not _finite(result.gain):
        return (
            f"Aligning toward {t}: the intervention did not move the target measurably "
            f"(G = {g}, below the threshold |G| >= {result.eps:g}); tax ratios are "
            "undefined, so GND and every tau are reported as n/a. The raw mean shifts of all "
            "values are still listed in the tax table."
        )

    direction = "" if result.gain > 0 else ", i.e. away from it (the intervention backfired)"
    parts = [f"Aligning toward {t} moved the target by {g}{direction}"]
    if _finite(result.gnd_l1):
        parts.append(
            f"the other values moved on average GND = "
            f"{_est(result.gnd_l1, _interval(result, 'gnd_l1'))} per unit of gain"
        )
    taus = {v: x for v, x in result.tau.items() if _finite(x)}
    losses = {v: x for v, x in taus.items() if x < 0}
    if losses:
        worst = min(losses, key=losses.__getitem__)
        p_worst = result.p_holm.get(worst)
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
    sig = [v for v in result.tau if _significant(result.p_holm.get(v))]
    n_other = len(result.tau)
    if any(_finite(p) for p in result.p_holm.values()):
        text += (
            f" {len(sig)} of the {n_other} other values moved significantly "
            f"(Holm p < {ALPHA:g})" + (": " + ", ".join(label(v) for v in sig) if sig else "") + "."
        )
    if _contains_zero(_interval(result, "gain")):
        text += (
            " Caution: the gain's interval includes zero, so the target's movement itself is not "
            "distinguishable from scene-to-scene noise, and the ratios above inherit that."
        )
    return text


def _tau_section(result: VATResult, rows: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    pct = _ci_pct(result)
    header = ["Value", "Mean shift", "tau", f"{pct} interval", "p", "Holm p", "Significant"]
    if rows is not None:
        header.append("Probe near chance")
    body = []
    for v in result.values:
        if v == result.target:
            row = [f"**{label(v)}** (target)", fmt(result.mean_shift.get(v)), "—", "—", "—", "—"]
            row.append("—")
        else:
            p_h = result.p_holm.get(v)
            row = [
                label(v),
                fmt(result.mean_shift.get(v)),
                fmt(result.tau.get(v)),
                fmt_interval(_interval(result, _tau_key(v))),
                fmt_p(result.p_values.get(v)),
                fmt_p(p_h),
                ("**yes**" if _significant(p_h) else "no") if _finite(p_h) else NA,
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
        "the gain is too small for a ratio.",
        "",
    ]
    return [*out, *_md_table(header, body), ""]


def _hubs_section(result: VATResult) -> list[str]:
    out = ["## 4. Coupling and coordination hubs", ""]
    out.append(
        f"R is the {result.coupling_method.capitalize()} correlation, over scenes, of two values' shifts. "
        f"Its RMS off-diagonal size is nVAT = "
        f"{_est(result.nvat_offdiag, _interval(result, 'nvat_offdiag'))}. A hub is a value whose shifts are "
        "coupled to many others (hub strength = sum of |R| with the other values)."
    )
    lo, hi = _interval(result, "nvat_offdiag")
    if _finite(result.nvat_offdiag) and _finite(lo) and not lo <= result.nvat_offdiag <= hi:
        out.append(
            "(The nVAT interval does not contain the estimate. That is expected when coupling is "
            "weak: nVAT is a root-mean-square of correlations, so resampling noise only adds to "
            "it. Read the interval as the estimate's spread, not as a coverage guarantee.)"
        )
    out.append("")
    if result.hubs:
        hubs = ", ".join(f"{label(h)} ({fmt(result.hub_strength.get(h))})" for h in result.hubs)
        out.append(f"Hubs, strongest first: {hubs}.")
    else:
        out.append("No hubs: every coupling is undefined (values without variance across scenes).")
    out.append("")
    return out


def circumplex_sentence(c: Any) -> str:
    """One sentence interpreting a circumplex-consistency value."""
    if not _finite(c):
        return (
            "It is undefined here (too few finite couplings, or no variation in them), so the "
            "circumplex cannot be checked."
        )
    c = float(c)
    if c >= 0.3:
        return (
            "It is positive: neighbouring values on the circle co-move and opposite values trade "
            "off, as Schwartz's theory predicts."
        )
    if c > 0.1:
        return "It is weakly positive: the coupling leans toward the circle's prediction."
    if c >= -0.1:
        return "It is close to zero: the coupling between values does not follow the circle."
    return (
        "It is negative: values that the theory places next to each other moved against each "
        "other, contrary to the circumplex."
    )


def _circumplex_section(result: VATResult) -> list[str]:
    return [
        "## 5. Circumplex consistency",
        "",
        f"Circumplex consistency = {fmt(result.circumplex_consistency)} (Spearman correlation "
        "over value pairs between R[u, v] and the cosine of their angle on the circle; positive = "
        "neighbours co-move as theory predicts). "
        + circumplex_sentence(result.circumplex_consistency),
        "",
    ]


def _stability_section(stab: StabilityProfile) -> list[str]:
    flips = stab.sign_flips
    out = [
        "## 6. Stability along the strength axis",
        "",
        f"- Monotonicity (Spearman of G against strength, +1 = G only grows): "
        f"{fmt(stab.monotonicity)}",
        f"- Sign flips of G between successive strengths: {flips}"
        + (" (the direction of the effect is not stable)" if flips else ""),
        f"- Volatility (std of successive changes of G, score units): {fmt(stab.volatility)}",
        "",
    ]
    body = [
        [f"{s:g}", fmt(g), fmt(d), fmt(n)]
        for s, g, d, n in zip(stab.strengths, stab.gains, stab.gnds, stab.nvats, strict=False)
    ]
    return [*out, *_md_table(["Strength", "G", "GND (L1)", "nVAT"], body), ""]


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
) -> Path:
    """Write ``out_dir/report.md``: a self-contained account of one VAT measurement.

    Sections: setup; probe validity (first, with a warning naming near-chance values); headline
    numbers with intervals and a plain-English reading; the per-value tax table; hubs; circumplex
    consistency; the stability profile (if given); notes. ``figures`` maps a name to a PNG (as
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
    lines += _headline_section(result)
    lines += ["### What this means", "", interpretation(result), ""]
    lines += fig("shift_circumplex")
    lines += _tau_section(result, rows)
    lines += fig("tau")
    lines += _hubs_section(result)
    lines += fig("coupling")
    lines += _circumplex_section(result)
    if stability is not None:
        lines += _stability_section(stability)
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
