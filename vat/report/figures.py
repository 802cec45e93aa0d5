"""Figures of VAT results, as PNG files (matplotlib, Agg backend, nothing is displayed).

One measurement (a `vat.metrics.VATResult`): the mean shift on the Schwartz circumplex, the
coupling heatmap, the per-value tax bars, and `make_figures` for all of them at once (with the
gain-vs-tax trajectory of `vat.report.curves`); a sweep: the tax matrix of its aligned values.

Every function writes one PNG, closes the figure and returns the path. They never recompute a
metric, and they never raise on undefined numbers: a result whose gain is too small (every tau and
GND NaN) still gives a figure, with a note saying why the ratios are missing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from vat.metrics import VATResult
from vat.report.curves import plot_gain_vs_tax
from vat.report.format import (
    ALPHA,
    NA,
    alpha_of,
    ci_pct,
    eps_text,
    fmt,
    fmt_interval,
    fmt_p,
    interval,
    label,
    tau_key,
)
from vat.report.plotting import (
    NEG,
    NEG_LIGHT,
    POS,
    POS_LIGHT,
    floats,
    note,
    save_figure,
    subplots,
)
from vat.taxonomy import Circle, Taxonomy, taxonomy_named


def circle_of(result: VATResult, taxonomy: Taxonomy | None = None) -> Taxonomy | None:
    """The result's taxonomy when it places the values on a circle (else None: no radar plot)."""
    tax = taxonomy or taxonomy_named(result.taxonomy)
    return tax if tax is not None and isinstance(tax.structure, Circle) else None


def _gain_note(result: VATResult) -> str:
    return f"gain too small ({eps_text(result)}):\ntax ratios undefined"


# --------------------------------------------------------------------------------------------------
# circumplex


def _circumplex_thetas(names: tuple[str, ...], taxonomy: Taxonomy) -> np.ndarray:
    """Angle (radians) of each value on the taxonomy's circle, values sharing a slot spread
    around it.

    Values sharing a slot (Schwartz's Conformity and Tradition; at micro level all micro-values of
    a value) are fanned out symmetrically so every marker is visible.
    """
    circle = taxonomy.structure
    slot_rad = 2 * math.pi / circle.n_slots
    slots = [circle.slot(b) for b in taxonomy.parents(names)]
    out = np.empty(len(names))
    for s in set(slots):
        members = [i for i, k in enumerate(slots) if k == s]
        k = len(members)
        # At most 40% of a slot either way, so neighbouring slots never interleave.
        step = min(math.radians(16), 0.8 * slot_rad / k)
        offsets = (np.arange(k) - (k - 1) / 2) * step
        out[members] = s * slot_rad + offsets
    return out


def plot_shift_circumplex(
    result: VATResult, path: str | Path, taxonomy: Taxonomy | None = None
) -> Path:
    """Radar plot of the mean shift of each value at its angle on the taxonomy's circle.

    The radius is ``mean_x D[x, v]`` (``result.mean_shift``, score units), drawn on a symmetric
    scale whose dashed middle ring is zero, so values that moved up (blue) lie outside it and values
    that moved down (red) inside. The target is a gold star with a bold label.
    """
    tax = circle_of(result, taxonomy)
    if tax is None:
        raise ValueError(
            f"taxonomy {result.taxonomy!r} places no values on a circle: no radar plot"
        )
    slot_rad = 2 * math.pi / tax.structure.n_slots
    names = result.values
    shift = floats(result.mean_shift.get(v) for v in names)
    theta = _circumplex_thetas(names, tax)
    fin = np.isfinite(shift)
    a = float(np.max(np.abs(shift[fin]))) if fin.any() else 0.0
    a = a * 1.15 if a > 0 else 1.0  # all-zero or all-NaN shifts still need a scale

    fig, ax = subplots(figsize=(7, 7), subplot_kw={"projection": "polar"})
    ax.set_theta_zero_location("N")
    ax.set_theta_direction(-1)
    # A polar axis cannot show negative radii around the centre; shifting the origin to -a keeps
    # the sign readable: centre = -a, dashed ring = 0, rim = +a.
    ax.set_rlim(-a, a)
    ring = np.linspace(0, 2 * np.pi, 361)
    ax.plot(ring, np.zeros_like(ring), color="0.2", lw=1.2, ls="--", zorder=2)

    if result.level != "micro":
        # The outline helps read 10 values as one profile; over 56 micro-values it is only noise.
        order = np.argsort(theta, kind="stable")
        th_c = np.append(theta[order], theta[order][0])
        sh_c = np.append(shift[order], shift[order][0])
        ax.plot(th_c, sh_c, color="0.45", lw=1.0, zorder=3)
        ax.fill(th_c, np.where(np.isfinite(sh_c), sh_c, -a), color="0.6", alpha=0.12, zorder=1)

    is_t = np.array([v == result.target for v in names])
    up, down = fin & (shift >= 0) & ~is_t, fin & (shift < 0) & ~is_t
    ax.scatter(theta[up], shift[up], color=POS, s=45, zorder=4)
    ax.scatter(theta[down], shift[down], color=NEG, s=45, zorder=4)
    t_r = np.where(fin & is_t, shift, 0.0)  # an undefined target shift is drawn on the zero ring
    ax.scatter(theta[is_t], t_r[is_t], marker="*", s=260, color="gold", edgecolor="k", zorder=5)

    if result.level == "micro":
        # One label per micro-value would overlap: label the values' slots instead.
        ticks, labels = [], []
        for s in range(tax.structure.n_slots):
            in_slot = [tax.label_of(v) for v in tax.value_names if tax.structure.slot(v) == s]
            ticks.append(s * slot_rad)
            labels.append(" / ".join(in_slot))
        ax.set_xticks(ticks, labels, fontsize=9)
    else:
        ax.set_xticks(theta, [label(v) for v in names], fontsize=9)
        for tick, v in zip(ax.get_xticklabels(), names, strict=True):
            if v == result.target:
                tick.set_fontweight("bold")
    ax.set_yticks([-a, -a / 2, 0.0, a / 2, a], [fmt(x) for x in (-a, -a / 2, 0.0, a / 2, a)])
    ax.tick_params(axis="y", labelsize=7, labelcolor="0.4")
    ax.set_rlabel_position(100)

    legend = [
        Line2D([], [], marker="o", ls="", color=POS, label="moved up (+)"),
        Line2D([], [], marker="o", ls="", color=NEG, label="moved down (-)"),
        Line2D([], [], marker="*", ls="", color="gold", mec="k", ms=13, label="target"),
        Line2D([], [], color="0.2", ls="--", label="no change (0)"),
    ]
    ax.legend(handles=legend, loc="upper right", bbox_to_anchor=(1.28, 1.1), fontsize=8)
    gain_ci = fmt_interval(result.intervals.get("gain"))
    ax.set_title(
        f"Mean shift per value (score units)\ntarget: {label(result.target)}, "
        f"G = {fmt(result.gain)} {gain_ci}",
        pad=28,
    )
    if not fin.any():
        note(ax, "no value has data")
    elif result.gain_too_small:
        fig.text(0.5, 0.02, _gain_note(result), ha="center", fontsize=9, color="0.3")
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# coupling


def plot_coupling(result: VATResult, path: str | Path) -> Path:
    """Heatmap of the coupling matrix R (diverging colours fixed to [-1, 1]).

    The diagonal (always 1) is masked in white so it does not dominate the colour scale's reading;
    undefined (NaN) couplings, from values without variance across scenes, are grey. Entries whose
    Holm-adjusted p (``R_p_holm``) is below ``1 - ci`` are printed in bold.
    """
    names = result.values
    n = len(names)
    R = np.array(result.R, dtype=float).reshape(n, n) if n else np.zeros((0, 0))
    P = np.array(result.R_p_holm, dtype=float) if len(result.R_p_holm or ()) == n else None
    alpha = alpha_of(result)
    off = R.copy()
    np.fill_diagonal(off, np.nan)

    size = min(14.0, max(5.5, 0.55 * n + 2.5))
    fig, ax = subplots(figsize=(size + 1.2, size))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
    im = ax.imshow(np.ma.masked_invalid(off), cmap=cmap, vmin=-1.0, vmax=1.0, aspect="equal")
    for i in range(n):
        ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, facecolor="white", edgecolor="0.85"))
    if n <= 12:
        for i in range(n):
            for j in range(n):
                if i == j:
                    continue
                x = off[i, j]
                txt = f"{x:.2f}" if np.isfinite(x) else NA
                color = "white" if np.isfinite(x) and abs(x) > 0.6 else "0.15"
                bold = P is not None and np.isfinite(P[i, j]) and P[i, j] < alpha
                ax.text(j, i, txt, ha="center", va="center", fontsize=7, color=color,
                        fontweight="bold" if bold else "normal")  # fmt: skip
    fs = 9 if n <= 12 else 6
    labels = [label(v) + (" *" if v == result.target else "") for v in names]
    ax.set_xticks(range(n), labels, rotation=50, ha="right", fontsize=fs)
    ax.set_yticks(range(n), labels, fontsize=fs)
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label(f"{result.coupling_method.capitalize()} correlation of per-scene shifts")
    nv_ci = fmt_interval(result.intervals.get("nvat_offdiag"))
    ax.set_title(
        f"Coupling R, target {label(result.target)} (*); grey = undefined, diagonal omitted, "
        f"bold = Holm p < {alpha:g}\n"
        f"nVAT debiased {fmt(result.nvat_offdiag_excess)} {nv_ci} (raw "
        f"{fmt(result.nvat_offdiag)}, noise floor {fmt(result.nvat_offdiag_null)}, "
        f"p = {fmt_p(result.p_nvat)})"
    )
    if n and not np.isfinite(off[~np.eye(n, dtype=bool)]).any():
        note(ax, "every coupling is undefined\n(no variation across scenes)")
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# per-value tax


def plot_tau(result: VATResult, path: str | Path) -> Path:
    """Horizontal bars of the per-value tax tau_v with their intervals, in circumplex order.

    Bars whose Holm-corrected bootstrap-t p is below ``1 - ci`` are drawn in full colour with a
    black edge (blue: moved up, red: moved down); the others are pale. Intervals are the result's
    ``tau.<value>`` Fieller intervals; an unbounded one (the gain's interval covers 0) is drawn as
    a dotted line across the axis, marked "unbounded".
    """
    alpha = alpha_of(result)
    names = [v for v in result.values if v != result.target]
    tau = floats(result.tau.get(v) for v in names)
    iv = np.array([floats(interval(result, tau_key(v))) for v in names]).reshape(len(names), 2)
    p = floats(result.p_holm.get(v) for v in names)
    sig = np.isfinite(p) & (p < alpha)
    y = np.arange(len(names))

    fig, ax = subplots(figsize=(7.5, max(3.0, 0.38 * len(names) + 1.6)))
    fin = np.isfinite(tau)
    colours = [
        (NEG if t < 0 else POS) if s else (NEG_LIGHT if t < 0 else POS_LIGHT)
        for t, s in zip(np.where(fin, tau, 0.0), sig, strict=True)
    ]
    ax.barh(
        y,
        np.where(fin, tau, 0.0),  # an undefined tau is an empty slot, not a bar
        color=colours,
        edgecolor=["k" if s else "none" for s in sig],
        linewidth=1.2,
        height=0.7,
        zorder=2,
    )
    ok = np.isfinite(iv).all(axis=1)
    # Lines from lo to hi rather than errorbar(): a percentile interval need not contain the point
    # estimate, and errorbar() rejects negative half-widths.
    ax.hlines(y[ok], iv[ok, 0], iv[ok, 1], color="0.15", lw=1.3, zorder=3)
    ax.scatter(iv[ok].ravel(), np.repeat(y[ok], 2), marker="|", color="0.15", s=60, zorder=3)
    for yi in y[~fin]:
        ax.text(0, yi, f" {NA}", va="center", ha="left", fontsize=8, color="0.4")
    unb = np.isinf(iv).any(axis=1) & ~np.isnan(iv).any(axis=1)
    ax.axvline(0, color="0.3", lw=0.8, zorder=1)
    ax.set_yticks(y, [label(v) for v in names], fontsize=9 if len(names) <= 12 else 6)
    ax.invert_yaxis()  # circumplex order top to bottom
    ax.set_xlabel("tau = mean shift / |G|   (+: moved up, -: moved down)")
    extent = np.concatenate([tau[fin], iv[ok].ravel()])
    if extent.size == 0:
        ax.set_xlim(-1, 1)
    if unb.any():  # a Fieller interval that is the whole line (or open on one side)
        lo_x, hi_x = ax.get_xlim()
        for yi, (a, b) in zip(y[unb], iv[unb], strict=True):
            ax.hlines(yi, max(a, lo_x), min(b, hi_x), color="0.4", lw=1.0, ls=":", zorder=3)
            ax.text(hi_x, yi, "unbounded ", va="center", ha="right", fontsize=7, color="0.35")
        ax.set_xlim(lo_x, hi_x)
    ax.grid(axis="x", color="0.9", zorder=0)
    pct = ci_pct(result)
    unbounded_note = "; unbounded: gain's interval covers 0" if unb.any() else ""
    ax.set_title(
        f"Per-value tax, target {label(result.target)}, G = {fmt(result.gain)}\n"
        f"bars: tau; lines: {pct} Fieller interval{unbounded_note}"
    )
    ax.legend(
        handles=[
            Patch(facecolor=POS, edgecolor="k", label=f"Holm p < {alpha:g}"),
            Patch(facecolor=POS_LIGHT, label="not significant"),
        ],
        loc="best",
        fontsize=8,
    )
    if result.gain_too_small or not fin.any():
        note(ax, _gain_note(result) if result.gain_too_small else "tau undefined")
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------------
# all at once


def make_figures(
    result: VATResult,
    out_dir: str | Path,
    *,
    points: Iterable[Any] | None = None,
) -> dict[str, Path]:
    """Write the standard figures into ``out_dir``; returns ``{name: path}`` for `write_report`.

    Names: ``shift_circumplex`` (a taxonomy with a circle), ``tau``, ``coupling`` and, when trajectory ``points`` are given,
    ``gain_vs_tax`` (files ``<name>.png``).
    """
    out = Path(out_dir)
    figs = {}
    if circle_of(result) is not None:  # a radar plot only where the taxonomy claims a circle
        figs["shift_circumplex"] = plot_shift_circumplex(result, out / "shift_circumplex.png")
    figs["tau"] = plot_tau(result, out / "tau.png")
    figs["coupling"] = plot_coupling(result, out / "coupling.png")
    if points is not None:
        figs["gain_vs_tax"] = plot_gain_vs_tax(
            points, out / "gain_vs_tax.png", target=result.target
        )
    return figs


# --------------------------------------------------------------------------------------------------
# a sweep's tax matrix


def plot_tax_matrix(tau: pd.DataFrame, path: Path, title: str, alpha: float = ALPHA) -> Path:
    """Aligned value (rows) x every value (columns): tau, the shift per unit gain; ``*`` marks a
    shift whose Holm-adjusted p (across that cell's other values) is below `alpha`."""
    # Columns: every value in its taxonomy's order (``order``, ``target_order``), else as listed.
    pos = dict(
        zip(tau["of_value"], tau["order"] if "order" in tau else range(len(tau)), strict=True)
    )
    if "target_order" in tau:
        pos.update(zip(tau["target"], tau["target_order"], strict=True))
    columns = sorted(dict.fromkeys([*tau["of_value"], *tau["target"]]),
                     key=lambda v: (pos.get(v) is None, pos.get(v) or 0))  # fmt: skip
    targets = [v for v in columns if v in set(tau["target"])]
    M = np.full((len(targets), len(columns)), np.nan)
    sig = np.zeros_like(M, dtype=bool)
    undefined = np.zeros_like(M, dtype=bool)
    for r in tau.itertuples():
        if not getattr(r, "gain_bounded", True):  # a ratio over a gain whose interval covers 0
            undefined[targets.index(r.target), columns.index(r.of_value)] = True
        elif r.tau is not None:
            M[targets.index(r.target), columns.index(r.of_value)] = float(r.tau)
            p = getattr(r, "p_holm", None)
            sig[targets.index(r.target), columns.index(r.of_value)] = (
                p is not None and np.isfinite(p) and p < alpha
            )
    lim = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 1.0
    fig, ax = subplots(figsize=(1.0 + 0.75 * len(columns), 1.4 + 0.5 * len(targets)))
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            txt = (
                "target" if columns[j] == targets[i]
                else "undef." if undefined[i, j]
                else fmt(M[i, j], 2) + ("*" if sig[i, j] else "")
            )  # fmt: skip
            ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(M[i, j]) and abs(M[i, j]) > 0.6 * lim else "black")  # fmt: skip
    ax.set_xticks(range(len(columns)), [label(v) for v in columns], rotation=45, ha="right")
    ax.set_yticks(range(len(targets)), [label(v) for v in targets])
    ax.set_xlabel("value whose score moved")
    ax.set_ylabel("aligned toward")
    ax.set_title(title + f"\n(* Holm p < {alpha:g})" + ("\n(undef.: the target's gain interval covers "
                          "0, so tau is no number)" if undefined.any() else "")
                 + ("\n(n/a: on-target gain below eps, tau undefined)"
                    if (np.isnan(M) & ~undefined).sum() > len(targets) else ""))  # fmt: skip
    fig.colorbar(im, ax=ax, label="tau: shift per unit on-target gain")
    return save_figure(fig, path)
