"""Markdown for the probe checks after the intervention (`vat.probes.checks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vat.report.format import NA, fmt, md_table

#: A post model whose judgment option mass fell below this share of the base model's (or from
#: above 0.2 to below it) no longer answers the rating question with a digit often enough to read its ratings.
MASS_DROP = 0.5


def _arrow(a: Any, b: Any) -> str:
    return NA if a is None and b is None else f"{fmt(a)} -> {fmt(b)}"


def check_warnings(probe: str, c: Mapping[str, Any]) -> list[str]:
    out = []
    m0, m1 = c.get("option_mass_pre"), c.get("option_mass_post")
    if m0 is not None and m1 is not None and (m1 < MASS_DROP * m0 or 0.2 > m1 < m0 >= 0.2):
        out.append(f"`{probe}`: the option-token mass fell from {fmt(m0)} to {fmt(m1)}: the post "
                   "model answers the rating question with a digit less often, and its rating "
                   "shifts partly measure that")  # fmt: skip
    a0, a1 = c.get("pair_accuracy_pre"), c.get("pair_accuracy_post")
    if a0 is not None and a1 is not None and a1 < a0 - 0.1:
        out.append(f"`{probe}`: pair accuracy fell from {fmt(a0)} to {fmt(a1)}: the probe tells "
                   "express from suppress less well after the intervention")  # fmt: skip
    g0, g1 = c.get("order_gap_pre"), c.get("order_gap_post")
    if g0 is not None and g1 is not None and g1 > g0 + 0.5:
        out.append(f"`{probe}`: the forward/reverse rating gap grew from {fmt(g0)} to {fmt(g1)}: "
                   "the post model reads the two scale orders differently (a position effect)")  # fmt: skip
    return out


def checks_lines(checks: Mapping[str, Mapping[str, Any]],
                 agreement: Mapping[str, float] | None = None) -> list[str]:  # fmt: skip
    """'Probe checks after the intervention': a row per probe, warnings, the two probes' agreement."""
    if not checks:
        return []
    lines = ["## Probe checks after the intervention", "",
             "Is the probe still measuring what it measured on the base model? Pair accuracy: "
             "share of held-out pairs ranked the right way; option mass (judgment): probability on "
             "the rating digits; order gap (judgment, both scale orders): mean |forward - reverse| "
             "rating.", ""]  # fmt: skip
    header = ["probe", "pair accuracy pre -> post", "option mass pre -> post",
              "order gap pre -> post"]  # fmt: skip
    lines += md_table(header, [[probe, *(_arrow(c.get(f"{k}_pre"), c.get(f"{k}_post"))
                                         for k in ("pair_accuracy", "option_mass", "order_gap"))]
                               for probe, c in checks.items()])  # fmt: skip
    warn = [w for probe, c in checks.items() for w in check_warnings(probe, c)]
    lines.append("")
    lines += [f"**Warning:** {w}." for w in warn] + ([""] if warn else [])
    if agreement:
        lines += [f"Judgment vs likelihood (Spearman): per-pair margins {fmt(agreement.get('margins_pre'), 2)} "
                  f"(base) and {fmt(agreement.get('margins_post'), 2)} (after); per-value shifts "
                  f"{fmt(agreement.get('value_shifts'), 2)}. Near 0: the two probes do not measure "
                  "the same thing on this model.", ""]  # fmt: skip
    return lines


def robustness_lines(rob: Mapping[str, Any] | None) -> list[str]:
    """'Robustness: micro level and Kendall' (``metrics.level=both``), as numbers."""
    if not rob:
        return []
    a = rob["agreement"]
    return [
        "## Robustness: micro level and Kendall's tau", "",
        f"- **56 micro-values** (the target's micro-values merged into one target column, their "
        f"siblings out of the tax; {a.get('n_values_micro')} other micro-values): gain "
        f"{fmt(a.get('gain_micro'))} (basic level {fmt(a.get('gain_basic'))}), GND b.-c. "
        f"{fmt(a.get('gnd_micro'))} (basic {fmt(a.get('gnd_basic'))}); rank correlation of the "
        f"tau vectors (micro tau averaged per value vs basic tau): "
        f"{fmt(a.get('tau_rank_corr_basic_micro'), 2)}. Micro nVAT (debiased): "
        f"{fmt(a.get('nvat_micro'))} over {a.get('n_pairs_nvat_micro')} micro-value pairs with "
        "enough shared scenes.",
        f"- **Kendall's tau** for coupling: rank correlation of the Spearman and Kendall R "
        f"entries {fmt(a.get('R_rank_corr_spearman_kendall'), 2)}; nVAT (debiased) Spearman "
        f"{fmt(a.get('nvat_spearman'))}, Kendall {fmt(a.get('nvat_kendall'))}.",
        "",
    ]  # fmt: skip
