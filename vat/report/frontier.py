"""The sweep report's tax-aware section: did anchoring (`vat.anchor`) lower the tax, and at what gain?

For every (model, target, probe) with a plain DPO arm and at least one tax-aware arm (``method.
anchor_per_pair`` > 0), over their seeds (`vat.metrics.repeats`): one row per arm (plain = lambda 0,
each lambda, and the DPO placebo when it ran) with gain, bias-corrected GND and null-corrected nVAT;
one row per anchored arm against plain (`vat.metrics.frontier.tax_difference`): the change of gain,
of the mean off-target |shift| and of GND, with intervals and p. The figure is the gain-vs-GND
frontier, one point per lambda with intervals on both axes (`plot_gain_vs_tax`). Data:
``frontier.csv``. The verdict is stated only as the intervals allow: "lowered the tax" needs the
off-target shift's decrease to be significant, "at a gain within plain DPO's interval" needs the
anchored gain inside the plain arm's gain interval.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vat.measure.arms import paired
from vat.metrics.frontier import arm_nvat, tax_difference
from vat.report.curves import plot_gain_vs_tax
from vat.report.format import fmt, fmt_estimate, fmt_gnd, fmt_interval, fmt_p, label, md_table


def _groups(arms: list[dict]) -> dict[tuple, dict]:
    """Per (model, value, probe): the plain arm (no anchor, no control), its anchored arms, and a
    placebo of the plain arm's method (``method.control_of``; the first by name if several)."""
    out: dict[tuple, dict] = {}
    for a in arms:
        g = out.setdefault((a["model"], a["value"], a["probe"]),
                           {"plain": None, "anchored": [], "controls": []})  # fmt: skip
        _, fn = a.get("anchor", (0.0, None))
        if fn is not None:
            g["anchored"].append(a)
        elif a["control_of"]:
            g["controls"].append(a)
        else:
            g["plain"] = a
    for g in out.values():
        plain = g["plain"]
        of_plain = [c for c in g.pop("controls") if plain and c["control_of"] == plain["method"]]
        g["placebo"] = min(of_plain, key=lambda c: c["method"]) if of_plain else None
    return {k: g for k, g in out.items() if g["plain"] is not None and g["anchored"]}


def frontier_section(
    arms: list[dict], out: Path, ci: float = 0.95, n_boot: int = 2000
) -> list[str]:
    """Write ``frontier.csv`` and the frontier figures into `out`; the report's Markdown lines.
    `arms` come from `vat.report.controls.analyse` (each with its stacked D and summary)."""
    alpha = 1 - ci
    lines: list[str] = []
    rows: list[dict] = []
    for (model, target, probe), g in _groups(arms).items():
        ordered = [g["plain"], *sorted(g["anchored"], key=lambda a: a["anchor"][0])]
        if g["placebo"] is not None:
            ordered.append(g["placebo"])
        points, body = [], []
        for a in ordered:
            s = a["summary"]
            nv = arm_nvat(a["D"], a["values"], n_boot=n_boot, ci=ci)
            lam, fn = a["anchor"]
            name = ("placebo" if a is g["placebo"] else "plain DPO" if a is g["plain"]
                    else f"anchored ({fn}), lambda = {lam:g}")  # fmt: skip
            row = {"model": model, "target": target, "probe": probe, "arm": name,
                   "method": a["method"], "lambda": lam, "anchor": fn, "n_seeds": s.n_seeds,
                   "gain": s.gain.value, "gain_lo": s.gain.lo, "gain_hi": s.gain.hi,
                   "p_gain": s.gain.p, "gnd_l1_bc": s.gnd["bc"], "gnd_lo": s.gnd["lo"],
                   "gnd_hi": s.gnd["hi"], "nvat_excess": nv["value"], "nvat_lo": nv["lo"],
                   "nvat_hi": nv["hi"], "nvat_offdiag": nv["raw"]}  # fmt: skip
            if a in g["anchored"]:
                D_anchored, D_plain, _ = paired(a, g["plain"])
                d = tax_difference(D_anchored, D_plain, a["values"], target, n_boot=n_boot, ci=ci)
                row.update({"d_gain": d.gain.value, "d_gain_lo": d.gain.lo,
                            "d_gain_hi": d.gain.hi, "p_d_gain": d.gain.p, "off": d.off.a,
                            "off_plain": d.off.b, "d_off": d.off.diff, "d_off_lo": d.off.lo,
                            "d_off_hi": d.off.hi, "p_d_off": d.off.p, "d_gnd": d.gnd.diff,
                            "d_gnd_lo": d.gnd.lo, "d_gnd_hi": d.gnd.hi, "p_d_gnd": d.gnd.p,
                            "gnd_defined": d.gnd_defined})  # fmt: skip
            rows.append(row)
            if a is not g["placebo"]:  # a GND over a gain that may be 0 is drawn as undefined
                undefined = not np.isfinite(s.gnd["hi"])
                points.append({"strength": lam, "gain": s.gain.value, "gain_lo": s.gain.lo,
                               "gain_hi": s.gain.hi, "gnd": np.nan if undefined else s.gnd["bc"],
                               "gnd_lo": s.gnd["lo"], "gnd_hi": s.gnd["hi"]})  # fmt: skip
            body.append([name, str(s.n_seeds),
                         fmt_estimate(s.gain.value, (s.gain.lo, s.gain.hi)),
                         fmt_gnd(s.gnd["bc"], s.gnd["lo"], s.gnd["hi"]),
                         fmt_estimate(nv["value"], (nv["lo"], nv["hi"]))])  # fmt: skip
        fig = plot_gain_vs_tax(points, out / f"frontier_{target}_{probe}.png", target=target,
                               strength_label="lambda")  # fmt: skip
        lines += [f"## Tax-aware DPO toward {label(target)}: the gain-vs-GND frontier ({probe} "
                  "probe)", "",
                  "One arm per lambda (plain DPO is lambda = 0), pooled over its seeds: intervals "
                  "from the two-level bootstrap (seeds, then the shared scenes). nVAT is "
                  "null-corrected, its interval resamples the scenes.", "",
                  *md_table(["arm", "seeds", "gain [CI]", "GND b.-c. [CI]",
                              "nVAT debiased [CI]"], body), "",
                  f"![frontier]({fig.name})", ""]  # fmt: skip
        lines += _comparison(rows, target, probe, model, alpha)
    if rows:
        pd.DataFrame(rows).to_csv(out / "frontier.csv", index=False)
    return lines


def _comparison(rows: list[dict], target: str, probe: str, model: str, alpha: float) -> list[str]:
    mine = [r for r in rows if (r["target"], r["probe"], r["model"]) == (target, probe, model)]
    plain = next(r for r in mine if r["arm"] == "plain DPO")
    body, verdicts = [], []
    for r in mine:
        if "d_off" not in r:
            continue
        body.append([r["arm"], _change(r, "gain"),
                     f"{fmt(r['off'])} vs {fmt(r['off_plain'])}: {_change(r, 'off')}",
                     _change(r, "gnd") if r["gnd_defined"]
                     else "undefined (a gain interval covers 0)"])  # fmt: skip
        verdicts.append(_verdict(r, plain, alpha))
    return ["Each anchored arm against plain DPO, paired over the held-out scenes (seeds drawn "
            "per arm): the change of the target gain, of the mean off-target |shift| (the tax in "
            "score units) and of GND (the tax per unit of gain); bias-corrected differences with "
            "percentile intervals. Negative = smaller under anchoring.", "",
            *md_table(["arm", "gain change [CI]", "off-target mean abs. shift: anchored vs plain, change "
                        "[CI]", "GND change [CI]"], body), "", *verdicts, ""]  # fmt: skip


def _change(r: dict, k: str) -> str:
    """The anchored-minus-plain difference ``d_<k>`` with its interval and p."""
    d = fmt_estimate(r[f"d_{k}"], (r[f"d_{k}_lo"], r[f"d_{k}_hi"]))
    return f"{d} (p {fmt_p(r[f'p_d_{k}'])})"


def _p(p: float) -> str:
    shown = fmt_p(p)
    return f"p {shown[0]} {shown[1:]}" if shown.startswith("<") else f"p = {shown}"


def _verdict(r: dict, plain: dict, alpha: float) -> str:
    """One sentence per anchored arm that claims only what its tests support: the off-target
    decrease, where the gain lies against plain DPO's interval, whether the gain itself fell
    (paired test) and whether the tax per unit of gain (GND) changed."""
    within = plain["gain_lo"] <= r["gain"] <= plain["gain_hi"]
    where = "within" if within else "outside"
    gain = (f"a gain of {fmt(r['gain'])}, {where} plain DPO's interval "
            f"{fmt_interval((plain['gain_lo'], plain['gain_hi']))}")  # fmt: skip
    if r["p_d_gain"] < alpha:
        gain += (f" (the paired test puts it {'below' if r['d_gain'] < 0 else 'above'} plain DPO's "
                 f"by {fmt(abs(r['d_gain']))}, {_p(r['p_d_gain'])})")  # fmt: skip
    if not r["gnd_defined"]:
        per_gain = "GND is undefined (a gain's interval covers 0)"
    elif r["p_d_gnd"] < alpha:
        per_gain = (f"the tax per unit of gain (GND) {'fell' if r['d_gnd'] < 0 else 'rose'} by "
                    f"{fmt(abs(r['d_gnd']))} ({_p(r['p_d_gnd'])})")  # fmt: skip
    else:
        per_gain = (f"the tax per unit of gain (GND) did not change distinguishably "
                    f"({fmt(r['d_gnd'])}, {_p(r['p_d_gnd'])})")  # fmt: skip
    if r["p_d_off"] < alpha and r["d_off"] < 0:
        head = f"lowered the off-target shift by {fmt(-r['d_off'])} ({_p(r['p_d_off'])})"
    else:
        head = (f"no reduction of the off-target shift distinguishable from noise "
                f"({_p(r['p_d_off'])})")  # fmt: skip
    return f"- {r['arm']}: {head}, at {gain}; {per_gain}."
