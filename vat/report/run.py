"""The report of one run: a console summary table and ``report.md``.

Both read a `vat.metrics.VATResult` (and optionally the probe-validity table from
`vat.probes.base.validity` and a `vat.metrics.StabilityProfile`) and never recompute a metric: the
numbers printed are the numbers in the result, formatted by `vat.report.format`. The report puts
probe validity first (`vat.report.validity`), then the headline numbers and their reading
(`vat.report.headline`), then the detail sections (`vat.report.sections`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vat.metrics import StabilityProfile, VATResult
from vat.report.format import (
    NA,
    alpha_text,
    ci_pct,
    eps_text,
    finite,
    fmt,
    fmt_interval,
    fmt_p,
    fmt_ratio_interval,
    hub_freq_text,
    interval,
    label,
    tau_key,
)
from vat.report.headline import headline_section, interpretation
from vat.report.sections import hubs_section, stability_section, structure_section, tau_section
from vat.report.validity import near_chance, validity_for, validity_rows, validity_section

#: Captions for the figure names written by `vat.report.figures.make_figures`; other keys of the
#: ``figures`` argument of `write_report` are captioned with the key itself.
FIGURE_CAPTIONS: dict[str, str] = {
    "shift_circumplex": "Mean shift per value, placed on the taxonomy's circle",
    "tau": "Per-value tax with Fieller intervals (highlighted: significant after Holm)",
    "coupling": "Coupling matrix R of the per-scene shifts",
    "gain_vs_tax": "Gain against gain-normalised drift along the strength axis",
}


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
    rows = validity_rows(validity)
    pct = ci_pct(result)
    r = result
    hubs = NA
    if r.hubs:
        hubs = ", ".join(r.hubs)
        if any(finite((r.hub_top_freq or {}).get(h)) for h in r.hubs):
            freq = ", ".join(hub_freq_text(r, h) for h in r.hubs)
            hubs += f"  (top-{r.hub_k} in {freq} of resamples)"
    head = [
        f"VAT  target: {r.target}  level: {r.level}  scenes: {r.n_scenes}",
        f"  gain G            {fmt(r.gain):>8}  {fmt_interval(interval(r, 'gain'))}"
        f"  p = {fmt_p(r.p_gain)}",
        f"  GND (L1, b.-c.)   {fmt(r.gnd_l1_bc):>8}  {fmt_ratio_interval(interval(r, 'gnd_l1'))}"
        f"  p(drift) = {fmt_p(r.p_drift)}; raw {fmt(r.gnd_l1)}, noise floor {fmt(r.gnd_l1_null)}",
        f"  GND (L2)          {fmt(r.gnd_l2):>8}",
        f"  collateral        {fmt(r.collateral):>8}",
        f"  tax unevenness    {fmt(r.tau_spread):>8}  sd of tau; if one common shift "
        f"{fmt(r.tau_spread_null)}, p = {fmt_p(r.p_uneven)}",
        f"  nVAT (debiased)   {fmt(r.nvat_offdiag_excess):>8}"
        f"  {fmt_interval(interval(r, 'nvat_offdiag'))}  p = {fmt_p(r.p_nvat)}; "
        f"raw {fmt(r.nvat_offdiag)}, noise floor {fmt(r.nvat_offdiag_null)}",
        *(
            [
                f"  circumplex cons.  {fmt(r.circumplex_consistency):>8}  null {fmt(r.circumplex_null)}, "
                f"Mantel p = {fmt_p(r.p_circumplex)}"
            ]
            if r.structure_kind == "circle"
            else []
        ),
        f"  hubs               {hubs}",
        f"  tests: bootstrap-t, {r.n_bootstrap} {r.bootstrap_scheme} resamples, {pct} intervals"
        if r.n_bootstrap
        else "  tests: no bootstrap (n_bootstrap = 0): no intervals or first-order tests",
        f"         permutation nulls: {r.n_permutations} permutations; "
        f"significant = p < {alpha_text(r)}",
    ]
    if r.gain_too_small:
        head.append(f"  ! gain too small ({eps_text(r)}): tax ratios are undefined (n/a)")
    elif r.n_bootstrap and not r.gain_bounded:
        head.append(f"  ! the gain's {pct} interval covers 0: tax intervals are unbounded")

    width = max(12, *(len(v) for v in r.values)) + 2
    cis = {v: fmt_ratio_interval(interval(r, tau_key(v))) for v in r.values if v != r.target}
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
            vrow = validity_for(rows, v)
            line += f"{fmt(vrow.get('accuracy')):>8}  {'near chance' if near_chance(vrow) else ''}"
        lines.append(line.rstrip())
    lines[len(head) + 2] = "-" * max(len(line) for line in lines[len(head) + 1 :])
    lines.append(
        f"(* = target; tau = mean shift / |G|, Fieller interval; p = bootstrap-t test of the "
        f"shift, Holm-corrected across the {len(r.tau)} other values)"
    )
    return "\n".join(lines)


def _figure_link(out_dir: Path, key: str, path: Path | str) -> str:
    """``![caption](relative/path.png)``: relative to the report so the folder can be moved."""
    p = Path(path)
    if not p.is_absolute():
        # A relative path is taken relative to out_dir first (where make_figures writes), then to
        # the working directory; a file that exists in neither is assumed to land in out_dir.
        p = p if (p.exists() and not (out_dir / p).exists()) else out_dir / p
    rel = Path(os.path.relpath(p.resolve(), out_dir.resolve())).as_posix()
    return f"![{FIGURE_CAPTIONS.get(key, key)}]({rel})"


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
    rows = validity_rows(validity)
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
        "The VAT asks: after aligning a model toward one value (the target), how much do "
        "the other values move? Shifts are post minus pre probe scores, paired by scene.",
        "",
    ]
    lines += validity_section(result, rows)
    lines += list(post_checks or [])
    lines += headline_section(result)
    lines += ["### What this means", "", interpretation(result), ""]
    lines += fig("shift_circumplex")
    lines += tau_section(result, rows)
    lines += fig("tau")
    lines += hubs_section(result)
    lines += fig("coupling")
    lines += structure_section(result)
    if stability is not None:
        lines += stability_section(stability, stability_axis)
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
