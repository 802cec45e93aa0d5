"""The sweep report's controls: repeats over seeds, the tax net of its placebo, the referee's
regression.

Cells that differ only by ``seed`` form an **arm** (one intervention, several training seeds,
`vat.report.arms`). For every arm (per probe) this stacks its cells' shift matrices into
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
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from vat.metrics.over_targets import aggregate_over_targets
from vat.metrics.regression import referee_regression, register_covariates
from vat.metrics.repeats import net_of_placebo, stack_runs, summarize_arm
from vat.report.arms import collect_arms, on_scenes, paired
from vat.report.cross import falsification_section
from vat.report.format import fmt, fmt_estimate, fmt_gnd, fmt_p, label, md_frame
from vat.report.frontier import frontier_section

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- analysis
def analyse(arms: list[dict], ci: float = 0.95, n_boot: int = 2000) -> dict[str, Any]:
    """repeats / net / regression tables (DataFrames) and per-arm result objects."""
    rep_rows, net_rows, reg_rows, nets, regs = [], [], [], [], []
    for a in arms:
        D, scenes, values = stack_runs(a["runs"])
        a["D"], a["scenes"], a["values"] = D, scenes, values
        s = summarize_arm(D, values, a["value"], n_boot=n_boot, ci=ci)
        a["summary"] = s
        rep_rows.append({
            "model": a["model"], "value": a["value"], "method": a["method"], "probe": a["probe"],
            "settings": " ".join(a["settings"]), "n_seeds": s.n_seeds,
            "seeds": ",".join(str(x) for x in a["seeds"]), "n_scenes": s.n_scenes,
            "gain": s.gain.value, "gain_lo": s.gain.lo, "gain_hi": s.gain.hi, "p_gain": s.gain.p,
            "gnd_l1": s.gnd["raw"], "gnd_l1_bc": s.gnd["bc"], "gnd_lo": s.gnd["lo"],
            "gnd_hi": s.gnd["hi"], "sd_gain_between_seeds": s.sd_gain,
            "sd_gnd_between_seeds": s.sd_gnd, "cells": ",".join(a["cells"]),
        })  # fmt: skip
    by_key = {(a["model"], a["value"], a["method"], a["probe"], a["settings"]): a for a in arms}
    for a in arms:
        if not a["control_of"]:
            continue
        real = by_key.get((a["model"], a["value"], a["control_of"], a["probe"], a["settings"]))
        if real is None:
            continue
        D_real, D_plac, scenes = paired(real, a)
        r = net_of_placebo(D_real, D_plac, real["values"], a["value"], n_boot=n_boot, ci=ci)
        nets.append((real, a, r))
        for v in real["values"]:
            e = r.net[v]
            net_rows.append({
                "model": a["model"], "target": a["value"], "method": real["method"],
                "placebo": a["method"], "probe": a["probe"], "value": v,
                "is_target": v == a["value"], "real": r.real.shift[v].value,
                "real_lo": r.real.shift[v].lo, "real_hi": r.real.shift[v].hi,
                "placebo_shift": r.placebo.shift[v].value, "placebo_lo": r.placebo.shift[v].lo,
                "placebo_hi": r.placebo.shift[v].hi, "net": e.value, "net_lo": e.lo,
                "net_hi": e.hi, "p_net": e.p, "p_net_holm": r.p_holm.get(v, np.nan),
                "n_seeds_real": r.real.n_seeds, "n_seeds_placebo": r.placebo.n_seeds,
                "n_scenes": len(scenes),
            })  # fmt: skip
    for a in arms:
        if a["control_of"]:
            continue
        reg = _regression(a, ci)
        if reg is None:
            continue
        regs.append((a, reg))
        for row in reg.table().to_dict(orient="records"):
            reg_rows.append({"model": a["model"], "target": a["value"], "method": a["method"],
                             "probe": a["probe"], **row})  # fmt: skip
    return {"repeats": pd.DataFrame(rep_rows), "net": pd.DataFrame(net_rows),
            "regression": pd.DataFrame(reg_rows), "nets": nets, "regs": regs,
            "over_targets": _over_targets(arms, ci, n_boot)}  # fmt: skip


def _over_targets(arms: list[dict], ci: float, n_boot: int) -> pd.DataFrame:
    """Per model x method x probe (x other settings) with 2+ targets: the mean tax over them."""
    groups: dict[tuple, list[dict]] = {}
    for a in arms:
        groups.setdefault((a["model"], a["method"], a["probe"], a["settings"]), []).append(a)
    rows = []
    for (model, method, probe, _), g in groups.items():
        if len({a["value"] for a in g}) < 2:
            continue
        shared = sorted(set.intersection(*(set(a["scenes"]) for a in g)))
        arms_t = [(a["value"], on_scenes(a, shared)) for a in g]
        agg = aggregate_over_targets(arms_t, g[0]["values"], n_boot=n_boot, ci=ci)
        rows.append({"model": model, "method": method, "probe": probe, "n_targets": len(g),
                     "targets": ",".join(agg.targets), "gnd_l1": agg.gnd["raw"],
                     "gnd_l1_bc": agg.gnd["bc"], "gnd_lo": agg.gnd["lo"], "gnd_hi": agg.gnd["hi"],
                     "nvat_excess": agg.nvat["value"], "nvat_lo": agg.nvat["lo"],
                     "nvat_hi": agg.nvat["hi"], "nvat_offdiag": agg.nvat["raw"]})  # fmt: skip
    return pd.DataFrame(rows)


_ITEMS: dict[str, Any] = {}


def _heldout(cfg):
    """The held-out items of a cell's data config, in its taxonomy (a cell saved before taxonomies
    were objects: the default one); loaded once per distinct config."""
    from hydra.utils import instantiate

    from vat.taxonomy import load_taxonomy

    tax_cfg = cfg.get("taxonomy")
    key = OmegaConf.to_yaml(cfg.data) + OmegaConf.to_yaml(tax_cfg or {})
    if key not in _ITEMS:
        taxonomy = instantiate(tax_cfg) if tax_cfg is not None else load_taxonomy()
        load = instantiate(cfg.data, _partial_=True, _convert_="all")
        _ITEMS[key] = load(taxonomy=taxonomy).heldout()
    return _ITEMS[key]


def _regression(a: dict, ci: float):
    try:
        held = _heldout(a["cfg"])
    except Exception as e:  # the data are not where the cell found them: say so, skip
        log.warning("referee regression for %s skipped: could not load its data (%s)",
                    a["cells"][0], e)  # fmt: skip
        return None
    scenes, values = a["scenes"], a["values"]
    cov = register_covariates(held, scenes, values)
    masses = a["mass"]
    if all(m is not None for m in masses):
        aligned = []
        for (sc, _, _), m in zip(a["runs"], masses, strict=True):
            full = np.full((len(scenes), len(values)), np.nan)
            full[[scenes.index(s) for s in sc]] = m
            aligned.append(full)
        cov["mass_change"] = np.stack(aligned)
    place = {it.scene_id: f"{it.country}|{it.domain}" for it in held}
    clusters = [place.get(s, s) for s in scenes]
    return referee_regression(a["D"], values, a["value"], clusters, covariates=cov, ci=ci)


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
