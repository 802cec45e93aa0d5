"""The headline of a run's report: the headline numbers, how they were tested, what they mean.

`methods_paragraph` says truthfully how every interval and p-value was obtained; `interpretation`
is a plain-English reading built from the numbers. Wording rule: a sentence calls a number
*significant* (or *above its noise floor*) only when the p-value of its own test, Holm-adjusted
where the p-values form a family (the values of one comparison, the value pairs of R, the hubs), is
below ``1 - ci``; everything else is reported as an estimate with its interval and p-value.
"""

from __future__ import annotations

from vat.metrics import VATResult
from vat.report.format import (
    NOT_BOOTSTRAPPED,
    alpha_of,
    alpha_text,
    ci_pct,
    contains_zero,
    eps_text,
    estimate_text,
    finite,
    fmt,
    fmt_interval,
    fmt_p,
    fmt_ratio_interval,
    interval,
    label,
    md_table,
    significant,
    verdict,
)


def methods_paragraph(result: VATResult) -> str:
    """How every interval and p-value of the report was obtained (the tests, truthfully)."""
    r = result
    pct, a = ci_pct(r), alpha_text(r)
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


def headline_section(result: VATResult) -> list[str]:
    r = result
    pct = ci_pct(r)
    rows = [
        [
            "On-target gain G",
            fmt(r.gain),
            fmt_interval(interval(r, "gain")),
            f"bootstrap-t p = {fmt_p(r.p_gain)}",
            "mean shift of the target value (score units)",
        ],
        [
            "GND (L1), bias-corrected: headline VAT",
            fmt(r.gnd_l1_bc),
            fmt_ratio_interval(interval(r, "gnd_l1")),
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
            fmt_interval(interval(r, "nvat_offdiag")),
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
    ]
    if r.structure_kind == "circle":
        rows.append([
            "Circumplex consistency",
            fmt(r.circumplex_consistency),
            NOT_BOOTSTRAPPED,
            f"Mantel p = {fmt_p(r.p_circumplex)}",
            "agreement of the coupling with the taxonomy's circle (-1 to 1); "
            f"{fmt(r.circumplex_null)} under random value labels",
        ])  # fmt: skip
    out = ["## 2. Headline numbers", ""]
    out += md_table(["Metric", "Estimate", f"{pct} interval", "Test", "Meaning"], rows)
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
    g = estimate_text(r.gain, interval(r, "gain"))
    if r.gain_too_small or not finite(r.gain):
        return (
            f"Aligning toward {t}: the intervention did not move the target measurably "
            f"(G = {g}, below the threshold: {eps_text(r)}); tax ratios are "
            "undefined, so GND and every tau are reported as n/a. The raw mean shifts of all "
            "values are still listed in the tax table."
        )

    moved = significant(r.p_gain, alpha) and not contains_zero(interval(r, "gain"))
    direction = (
        ""
        if r.gain > 0
        else ", i.e. away from it" + (" (the intervention backfired)" if moved else "")
    )
    p_g = f" (bootstrap-t p = {fmt_p(r.p_gain)})" if finite(r.p_gain) else ""
    parts = [f"Aligning toward {t} moved the target by {g}{direction}{p_g}"]
    if finite(r.gnd_l1_bc):
        drift = verdict(
            r.p_drift, alpha,
            f"; at least one other value moved (p = {fmt_p(r.p_drift)})",
            f"; that is not distinguishable from no drift at all (p = {fmt_p(r.p_drift)})",
        )  # fmt: skip
        parts.append(
            "the other values moved on average GND = "
            f"{estimate_text(r.gnd_l1_bc, interval(r, 'gnd_l1'), ratio=True)} per unit of gain "
            f"after bias correction (raw {fmt(r.gnd_l1)}, noise floor {fmt(r.gnd_l1_null)}){drift}"
        )
    elif finite(r.gnd_l1):
        parts.append(
            f"the other values moved on average GND = {fmt(r.gnd_l1)} per unit of gain (raw: "
            "without the bootstrap there is no noise floor or bias correction)"
        )
    taus = {v: x for v, x in r.tau.items() if finite(x)}
    losses = {v: x for v, x in taus.items() if x < 0}
    if losses:
        worst = min(losses, key=losses.__getitem__)
        p_worst = r.p_holm.get(worst)
        p_txt = f", Holm p = {fmt_p(p_worst)}" if finite(p_worst) else ""
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
    sig = [v for v in r.tau if significant(r.p_holm.get(v), alpha)]
    n_other = len(r.tau)
    if any(finite(p) for p in r.p_holm.values()):
        text += (
            f" {len(sig)} of the {n_other} other values moved significantly "
            f"(Holm p < {alpha:g})" + (": " + ", ".join(label(v) for v in sig) if sig else "") + "."
        )
    text += verdict(
        r.p_uneven, alpha,
        f" The tax is uneven: the other values did not all move by one common amount "
        f"(p = {fmt_p(r.p_uneven)}).",
        f" The data do not show the tax to be uneven across values (p = {fmt_p(r.p_uneven)}): "
        "one common shift of all other values fits them as well.",
    )  # fmt: skip
    nv = estimate_text(r.nvat_offdiag_excess, interval(r, "nvat_offdiag"))
    if finite(r.nvat_offdiag_excess) and finite(r.p_nvat):
        text += verdict(
            r.p_nvat, alpha,
            f" Scene-level coupling between values is above its noise floor: debiased nVAT = "
            f"{nv} (raw {fmt(r.nvat_offdiag)}, noise floor {fmt(r.nvat_offdiag_null)}, "
            f"permutation p = {fmt_p(r.p_nvat)}).",
            f" Scene-level coupling between values is not above its noise floor: raw nVAT "
            f"{fmt(r.nvat_offdiag)} against {fmt(r.nvat_offdiag_null)} with no coupling at all "
            f"(permutation p = {fmt_p(r.p_nvat)}), debiased nVAT = {nv}.",
        )  # fmt: skip
    elif finite(r.nvat_offdiag):
        text += (
            f" Raw nVAT = {fmt(r.nvat_offdiag)} (no permutation null was computed; raw coupling "
            "is biased upward by noise)."
        )
    if contains_zero(interval(r, "gain")):
        text += (
            " Caution: the gain's interval includes zero, so the target's movement itself is not "
            "distinguishable from scene-to-scene noise, the ratios above inherit that and their "
            "intervals are unbounded."
        )
    return text
