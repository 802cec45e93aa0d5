"""The detail sections of a run's report: per-value tax, coupling and hubs, circumplex, stability.

Each function returns the section's Markdown lines from a `vat.metrics.VATResult` (or a
`vat.metrics.StabilityProfile`), numbers as the result holds them; the one thing derived here is
the Holm adjustment of the hubs' permutation p-values, a family the result leaves unadjusted.
"""

from __future__ import annotations

import math
from typing import Any

from vat.metrics import StabilityProfile, VATResult
from vat.report.format import (
    ALPHA,
    NA,
    alpha_of,
    ci_pct,
    estimate_text,
    finite,
    fmt,
    fmt_p,
    fmt_ratio_interval,
    hub_freq_text,
    interval,
    label,
    md_table,
    significant,
    tau_key,
    verdict,
)
from vat.report.validity import Rows, near_chance, validity_for


def tau_section(result: VATResult, rows: Rows | None) -> list[str]:
    r = result
    pct, alpha = ci_pct(r), alpha_of(r)
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
                fmt_ratio_interval(interval(r, tau_key(v))),
                fmt_p(r.p_values.get(v)),
                fmt_p(p_h),
                ("**yes**" if significant(p_h, alpha) else "no") if finite(p_h) else NA,
            ]
        if rows is not None:
            row.append("**yes**" if near_chance(validity_for(rows, v)) else "no")
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
    return [*out, *md_table(header, body), ""]


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
            if finite(p):
                tested += 1
                if float(p) < alpha and finite(R[i][j]):
                    out.append((names[i], names[j], float(R[i][j]), float(p)))
    return sorted(out, key=lambda x: -abs(x[2])), tested


def hubs_section(result: VATResult) -> list[str]:
    r = result
    alpha = alpha_of(r)
    out = ["## 4. Coupling and coordination hubs", ""]
    nv = estimate_text(r.nvat_offdiag_excess, interval(r, "nvat_offdiag"))
    said = verdict(
        r.p_nvat, alpha,
        f"so the coupling is above its noise floor (permutation p = {fmt_p(r.p_nvat)})",
        f"so the coupling is not above its noise floor (permutation p = {fmt_p(r.p_nvat)})",
    )  # fmt: skip
    head = (
        f"R is the {r.coupling_method.capitalize()} correlation, over scenes, of two values' "
        f"shifts. Its RMS off-diagonal size is raw nVAT = {fmt(r.nvat_offdiag)}"
    )
    if finite(r.nvat_offdiag_null):
        head += (
            f"; with no coupling at all it would read {fmt(r.nvat_offdiag_null)} at "
            f"{r.n_scenes} scenes (the permutation null), and the debiased nVAT is {nv}"
            + (f", {said}." if said else ".")
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
    hub_holm = r.hub_p_holm or {}  # older result files lack it: shown as n/a
    freq = [
        f"{label(h)} is a top-{r.hub_k} hub in {hub_freq_text(r, h)} of resamples"
        for h in r.hubs
        if finite((r.hub_top_freq or {}).get(h))
    ]
    hubs = ", ".join(f"{label(h)} ({fmt(r.hub_strength.get(h))})" for h in r.hubs)
    out.append(f"Hubs, strongest first: {hubs}." + (f" {'; '.join(freq)}." if freq else ""))
    if any(finite(p) for p in hub_holm.values()):
        stand = [v for v in r.values if significant(hub_holm.get(v), alpha)]
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
                hub_freq_text(r, v),
            ]
            for v in sorted(r.values, key=lambda v: -_nan_low(r.hub_strength.get(v)))
        ]
        out += md_table(["Value", "Hub strength", "Null", "Excess", "p", "Holm p",
                         f"Top-{r.hub_k} share"], body)  # fmt: skip
        out.append("")
    return out


def _nan_low(x: Any) -> float:
    return float(x) if finite(x) else -math.inf


def circumplex_sentence(c: Any, p: Any = None, alpha: float = ALPHA) -> str:
    """One sentence interpreting a circumplex-consistency value.

    With the Mantel p-value ``p``, the sentence says whether the test supports the reading: a
    pattern the test does not distinguish from a random placement of the values on the circle is
    described as a tendency of this sample only.
    """
    if not finite(c):
        return (
            "It is undefined here (too few finite couplings, or no variation in them), so the "
            "circumplex cannot be checked."
        )
    c = float(c)
    if c >= 0.3:
        text = (
            "It is positive: neighbouring values on the circle co-move and opposite values trade "
            "off, as the circumplex predicts."
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
    if not finite(p):
        return text
    if float(p) < alpha:
        return text + f" The Mantel test supports this (p = {fmt_p(p)} < {alpha:g})."
    return text + (
        f" The Mantel test does not distinguish it from a random placement of the values on the "
        f"circle (p = {fmt_p(p)}), so this describes these scenes only."
    )


def structure_section(result: VATResult) -> list[str]:
    """Section 5: the statistics of the structure the taxonomy declares (a circle: circumplex
    consistency, RTHOR, the cosine profile; clusters: within vs between coupling). A taxonomy
    without structure has no section: nothing is claimed, so nothing is tested."""
    r, st, a = result, result.structure, alpha_of(result)
    if r.structure_kind == "circle":
        lines = ["## 5. Structure: the circle", "",
                 f"Circumplex consistency = {fmt(r.circumplex_consistency)} (Spearman correlation "
                 "over value pairs between R[u, v] and the cosine of their angle on the circle; "
                 f"positive = neighbours co-move). Under random value labels it averages "
                 f"{fmt(r.circumplex_null)} (excess {fmt(r.circumplex_excess)}; Mantel test, "
                 f"p = {fmt_p(r.p_circumplex)}). "
                 + circumplex_sentence(r.circumplex_consistency, r.p_circumplex, a), ""]  # fmt: skip
        if "rthor_ci" in st:
            lines += [f"- RTHOR (do nearer values on the circle couple more?): correspondence index "
                      f"{fmt(st['rthor_ci'])} (-1 to 1), relabeling p = {fmt_p(st['rthor_p'])}.",
                      f"- Cosine profile of the off-target shifts over the circle (target left "
                      f"out): amplitude {fmt(st['cosine_amplitude'])}, peak at "
                      f"{fmt(st['cosine_displacement'], 0)} degrees "
                      f"({fmt(st['cosine_target_distance'], 0)} from the target), R^2 "
                      f"{fmt(st['cosine_r2'])} (p = {fmt_p(st['cosine_p'])}); loading toward the "
                      f"target {fmt(st['cosine_target_loading'])} (one-sided p = "
                      f"{fmt_p(st['cosine_p_target'])}).", ""]  # fmt: skip
        return lines
    if r.structure_kind == "clusters" and "cluster_contrast" in st:
        verdict = ("values of the same cluster co-move more than values of different clusters"
                   if finite(st["cluster_p"]) and st["cluster_p"] < a else
                   "not distinguishable from a random grouping of the values")  # fmt: skip
        return ["## 5. Structure: the clusters", "",
                f"Mean coupling within clusters {fmt(st['cluster_within'])}, between clusters "
                f"{fmt(st['cluster_between'])}: contrast {fmt(st['cluster_contrast'])} "
                f"(label-permutation p = {fmt_p(st['cluster_p'])}): {verdict}.", ""]  # fmt: skip
    return []


def stability_section(stab: StabilityProfile, axis: str = "strength") -> list[str]:
    flips = stab.sign_flips
    sure = stab.sign_flips_beyond_noise
    noise = stab.volatility_noise
    vol = f"- Volatility (std of successive changes of G, score units): {fmt(stab.volatility)}"
    if finite(noise):
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
    return [*out, *md_table(header, body), ""]
