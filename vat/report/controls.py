"""The sweep report's controls: repeats over seeds, the tax net of its placebo, the referee's
regression.

Cells that differ only by ``seed`` form an **arm** (one intervention, several training seeds,
`vat.measure.arms`). For every arm (per probe) this stacks its cells' shift matrices into
D[seed, scene, value] and reports (`vat.metrics.repeats`):

- ``repeats.csv``: one row per arm: gain and bias-corrected GND with two-level bootstrap-t
  intervals (seeds, then scenes), and the between-seed standard deviation of gain and GND;
- ``net_of_placebo.csv``: for an arm whose method is a placebo (``method.control_of``, e.g.
  ``dpo_placebo`` controls ``dpo``) and the real arm with otherwise the same settings: per value
  the real shift, the placebo shift and the net shift with intervals and Holm-adjusted p;
- ``over_targets.csv``: per model x method x probe with two or more targets, the mean GND and
  mean debiased nVAT over the targets (joint-scene intervals, `aggregate_over_targets`);
- ``frontier.csv``: tax-aware DPO (`vat.anchor`) against plain DPO: per arm gain, GND, nVAT, and
  the anchored-minus-plain differences (`vat.report.frontier`), with the gain-vs-GND figure;
- ``regression.csv``: the referee's regression (`vat.metrics.regression`) per real arm, pooled over
  its seeds, with length, negation and (when a judgment probe ran) option-mass covariates.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from vat.measure.arms import analyse, collect_arms
from vat.report.cross import falsification_section
from vat.report.format import fmt, fmt_estimate, fmt_gnd, fmt_p, label, md_frame
from vat.report.frontier import frontier_section

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- analysis
# ---------------------------------------------------------------------------- writing
def controls_section(sweep_dir: Path, out: Path, cells: dict[str, dict],
                     ci: float = 0.95, n_boot: int = 2000) -> list[str]:  # fmt: skip
    """Write the controls tables into `out` and return the report's Markdown lines."""
    arms = collect_arms(sweep_dir, cells)
    if not arms:
        return []
    res = analyse(arms, ci=ci, n_boot=n_boot)
    res["repeats"].to_csv(out / "repeats.csv", index=False)
    res["net"].to_csv(out / "net_of_placebo.csv", index=False)
    res["regression"].to_csv(out / "regression.csv", index=False)
    alpha = 1 - ci
    lines = ["## Repeats: cells that differ only by seed", "",
             "One row per arm (model x target x method x probe x other settings) pooled over its "
             "seeds: intervals from a two-level bootstrap-t (seeds, then the shared scenes), so "
             "they include the between-seed variance; the between-seed SD is the spread of the "
             "per-seed numbers; with few seeds (3 is few) the seed variance is estimated from few "
             "numbers. A GND interval open above (+inf) means the gain's interval covers 0. "
             "Data: `repeats.csv`.", ""]  # fmt: skip
    rep = res["repeats"]
    shown = pd.DataFrame({
        "target": [label(v) for v in rep["value"]],
        "method": [f"{m} ({s})" if s else m for m, s in zip(rep["method"], rep["settings"], strict=True)],
        "probe": rep["probe"],
        "seeds": rep["n_seeds"],
        "gain [CI]": [fmt_estimate(r.gain, (r.gain_lo, r.gain_hi)) for r in rep.itertuples()],
        "gain p": [fmt_p(p) for p in rep["p_gain"]],
        "GND b.-c. [CI]": [fmt_gnd(r.gnd_l1_bc, r.gnd_lo, r.gnd_hi) for r in rep.itertuples()],
        "SD gain / GND between seeds": [f"{fmt(r.sd_gain_between_seeds)} / {fmt(r.sd_gnd_between_seeds)}"
                                        for r in rep.itertuples()],
    })  # fmt: skip
    lines += md_frame(shown)
    agg = res["over_targets"]
    agg.to_csv(out / "over_targets.csv", index=False)
    if not agg.empty:
        lines += ["## Aggregate tax over targets", "",
                  "Per model x method x probe: the mean over the aligned targets of the "
                  "bias-corrected GND and of the debiased nVAT. The targets share the held-out "
                  "scenes, so each resample draws the scenes once for all of them (and each "
                  "target's seeds); the nVAT interval resamples scenes. Data: `over_targets.csv`.", "",
                  *md_frame(pd.DataFrame({
                      "model": agg["model"], "method": agg["method"], "probe": agg["probe"],
                      "targets": agg["n_targets"],
                      "mean GND b.-c. [CI]": [fmt_gnd(r.gnd_l1_bc, r.gnd_lo, r.gnd_hi) for r in agg.itertuples()],
                      "mean GND raw": [fmt(x) for x in agg["gnd_l1"]],
                      "mean nVAT debiased [CI]": [fmt_estimate(r.nvat_excess, (r.nvat_lo, r.nvat_hi)) for r in agg.itertuples()],
                      "mean nVAT raw": [fmt(x) for x in agg["nvat_offdiag"]],
                  }))]  # fmt: skip
    for real, plac, r in res["nets"]:
        lines += [f"## Is the tax real? {real['method']} toward {label(real['value'])} net of "
                  f"{plac['method']} ({real['probe']} probe)", "",
                  f"Shift of every value under `{real['method']}` ({r.real.n_seeds} seeds) and "
                  f"under its placebo `{plac['method']}` ({r.placebo.n_seeds} seeds), on the same "
                  f"{r.real.n_scenes} held-out scenes, and the difference: what the value did "
                  "beyond any fine-tuning of this budget and format. Intervals: two-level "
                  "bootstrap-t; p: Holm-adjusted across the non-target values. "
                  f"{_net_verdict(r, alpha)}", ""]  # fmt: skip
        rows = []
        for v in r.values:
            e = r.net[v]
            rows.append({"value": label(v) + (" (target)" if v == r.target else ""),
                         "real [CI]": _est(r.real.shift[v]), "placebo [CI]": _est(r.placebo.shift[v]),
                         "net [CI]": _est(e),
                         "p (Holm)": fmt_p(e.p) if v == r.target else fmt_p(r.p_holm.get(v)),
                         "": "significant" if (r.p_holm.get(v, e.p if v == r.target else 1) < alpha) else ""})  # fmt: skip
        lines += [*md_frame(pd.DataFrame(rows)),
                  f"Net GND (of the net shifts): {fmt_gnd(**r.gnd)}; the real arm's own: "
                  f"{fmt_gnd(**r.real.gnd)}, the placebo's: {fmt_gnd(**r.placebo.gnd)}. "
                  "Data: `net_of_placebo.csv`.", ""]  # fmt: skip
    lines += falsification_section(sweep_dir, out, res["nets"], ci=ci, n_boot=n_boot)
    lines += frontier_section(arms, out, ci=ci, n_boot=n_boot)
    for a, reg in res["regs"]:
        lines += [f"## Referee's regression: {a['method']} toward {label(a['value'])} "
                  f"({a['probe']} probe, {len(a['runs'])} seed(s))", "", f"`{reg.equation()}`", ""]  # fmt: skip
        t = reg.table()
        cov_cols = [c for c in reg.covariates]
        shown = pd.DataFrame({
            "value": [label(v) for v in t["value"]], "n (clusters)": [f"{n} ({g})" for n, g in zip(t["n"], t["clusters"], strict=True)],
            "b [CI]": [fmt_estimate(r.b, (r.b_lo, r.b_hi)) for r in t.itertuples()],
            "p_b (Holm)": [f"{fmt_p(p)} ({fmt_p(q)})" for p, q in zip(t["p_b"], t["p_b_holm"], strict=True)],
            **{c: [f"{fmt(x)} (p {fmt_p(p)})" for x, p in zip(t[c], t[f"p_{c}"], strict=True)] for c in cov_cols},
            "R2": [fmt(x, 2) for x in t["r2"]], "max VIF": [fmt(x, 2) for x in t["max_vif"]],
            "dropped": t["dropped"],
        })  # fmt: skip
        n_sig = int((pd.to_numeric(t["p_b_holm"], errors="coerce") < alpha).sum())
        lines += [*md_frame(shown),
                  f"{n_sig} of {len(t)} values follow the target's per-scene shift at Holm-adjusted "
                  f"p < {alpha:g} after the covariates. Data: `regression.csv`.", ""]  # fmt: skip
    return lines


def _net_verdict(r, alpha: float) -> str:
    g = r.gain
    sig = [label(v) for v, p in r.p_holm.items() if p < alpha]
    gain = ("The target gained beyond the placebo" if g.p < alpha else
            "The target's gain is not distinguishable from the placebo's")  # fmt: skip
    tax = (f"; net of the placebo, {', '.join(sig)} moved (Holm p < {alpha:g})." if sig else
           f"; no other value moved beyond the placebo (every Holm p >= {alpha:g}).")  # fmt: skip
    return f"{gain} (p = {fmt_p(g.p)}){tax}"


def _est(e) -> str:
    """A `vat.metrics.repeats` estimate (value, lo, hi) as ``x [lo, hi]``."""
    return fmt_estimate(e.value, (e.lo, e.hi))
