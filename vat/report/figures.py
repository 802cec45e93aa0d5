"""Figures of a VAT measurement, as PNG files (matplotlib, Agg backend, nothing is displayed).

Every function takes a `vat.metrics.VATResult` (or trajectory points), writes one PNG, closes the
figure and returns the path. They never recompute a metric, and they never raise on undefined
numbers: a result whose gain is too small (every tau and GND NaN) still gives a figure, with a note
saying why the ratios are missing.

Importing this module selects matplotlib's non-interactive Agg backend (so it works on a headless
training node); import `vat.report.markdown` alone when only text output is wanted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

# Before pyplot is imported: figures are written to files, never shown, and a headless node has
# no display for an interactive backend.
matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from vat.metrics import VATResult
from vat.report.markdown import _eps_text, alpha_of, fmt, fmt_interval, fmt_p, label
from vat.values import BASIC, BASIC_VALUES, N_SLOTS, UnknownValueError, basic_value_of, canonical

__all__ = [
    "gain_tax_point",
    "make_figures",
    "plot_coupling",
    "plot_curve",
    "plot_gain_vs_tax",
    "plot_shift_circumplex",
    "plot_tau",
]

_POS, _NEG = "tab:blue", "tab:red"  # moved up (more endorsed) / moved down
_POS_LIGHT, _NEG_LIGHT = "#c6dbef", "#fcbba1"
_DPI = 120
_SLOT_RAD = 2 * math.pi / N_SLOTS


def _save(fig: Any, path: str | Path) -> Path:
    """Write the figure as PNG and close it (a long run makes many; open figures leak memory)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(p, dpi=_DPI, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return p


def _arr(xs: Iterable[Any]) -> np.ndarray:
    """Floats with None -> NaN."""
    return np.array([math.nan if x is None else float(x) for x in xs], dtype=float)


def _note(ax: Any, text: str) -> None:
    ax.text(
        0.5,
        0.5,
        text,
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=10,
        color="0.3",
        bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.6", "alpha": 0.9},
        zorder=10,
    )


def _gain_note(result: VATResult) -> str:
    return f"gain too small ({_eps_text(result)}):\ntax ratios undefined"


def _basic_of(name: str) -> str | None:
    key = canonical(name)
    if key in BASIC:
        return key
    try:
        return basic_value_of(key)
    except UnknownValueError:
        return None


# --------------------------------------------------------------------------------------------------
# circumplex


def _circumplex_thetas(names: tuple[str, ...]) -> np.ndarray:
    """Angle (radians) of each value on the circle, values sharing a slot spread around it.

    Conformity and Tradition share a slot (and at micro level all micro-values of a basic value
    share its slot); they are fanned out symmetrically so every marker is visible. Names outside
    the taxonomy fall back to an even spacing.
    """
    basics = [_basic_of(n) for n in names]
    if any(b is None for b in basics):
        return np.linspace(0, 2 * np.pi, len(names), endpoint=False)
    slots = [BASIC[b].slot for b in basics]  # type: ignore[index]
    out = np.empty(len(names))
    for s in set(slots):
        members = [i for i, k in enumerate(slots) if k == s]
        k = len(members)
        # At most 40% of a slot either way, so neighbouring slots never interleave.
        step = min(math.radians(16), 0.8 * _SLOT_RAD / k)
        offsets = (np.arange(k) - (k - 1) / 2) * step
        out[members] = s * _SLOT_RAD + offsets
    return out


def plot_shift_circumplex(result: VATResult, path: str | Path) -> Path:
    """Radar plot of the mean shift of each value at its circumplex angle.

    The radius is ``mean_x D[x, v]`` (``result.mean_shift``, score units), drawn on a symmetric
    scale whose dashed middle ring is zero, so values that moved up (blue) lie outside it and values
    that moved down (red) inside. The target is a gold star with a bold label.
    """
    names = result.values
    shift = _arr(result.mean_shift.get(v) for v in names)
    theta = _circumplex_thetas(names)
    fin = np.isfinite(shift)
    a = float(np.max(np.abs(shift[fin]))) if fin.any() else 0.0
    a = a * 1.15 if a > 0 else 1.0  # all-zero or all-NaN shifts still need a scale

    fig = plt.figure(figsize=(7, 7))
    ax = fig.add_subplot(projection="polar")
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
    ax.scatter(theta[up], shift[up], color=_POS, s=45, zorder=4)
    ax.scatter(theta[down], shift[down], color=_NEG, s=45, zorder=4)
    t_r = np.where(fin & is_t, shift, 0.0)  # an undefined target shift is drawn on the zero ring
    ax.scatter(theta[is_t], t_r[is_t], marker="*", s=260, color="gold", edgecolor="k", zorder=5)

    if result.level == "micro":
        # 56 labels would overlap: label the basic-value slots instead.
        ticks, labels = [], []
        for s in range(N_SLOTS):
            in_slot = [label(v) for v in BASIC_VALUES if BASIC[v].slot == s]
            ticks.append(s * _SLOT_RAD)
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
        Line2D([], [], marker="o", ls="", color=_POS, label="moved up (+)"),
        Line2D([], [], marker="o", ls="", color=_NEG, label="moved down (-)"),
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
        _note(ax, "no value has data")
    elif result.gain_too_small:
        fig.text(0.5, 0.02, _gain_note(result), ha="center", fontsize=9, color="0.3")
    return _save(fig, path)


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
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
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
                txt = f"{x:.2f}" if np.isfinite(x) else "n/a"
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
        _note(ax, "every coupling is undefined\n(no variation across scenes)")
    return _save(fig, path)


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
    tau = _arr(result.tau.get(v) for v in names)
    iv = np.array(
        [_arr(result.intervals.get(f"tau.{v}", (math.nan, math.nan))) for v in names]
    ).reshape(len(names), 2)
    p = _arr(result.p_holm.get(v) for v in names)
    sig = np.isfinite(p) & (p < alpha)
    y = np.arange(len(names))

    fig, ax = plt.subplots(figsize=(7.5, max(3.0, 0.38 * len(names) + 1.6)))
    fin = np.isfinite(tau)
    colours = [
        (_NEG if t < 0 else _POS) if s else (_NEG_LIGHT if t < 0 else _POS_LIGHT)
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
        ax.text(0, yi, " n/a", va="center", ha="left", fontsize=8, color="0.4")
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
    pct = f"{100 * result.ci:g}%" if math.isfinite(result.ci) else "CI"
    unbounded_note = "; unbounded: gain's interval covers 0" if unb.any() else ""
    ax.set_title(
        f"Per-value tax, target {label(result.target)}, G = {fmt(result.gain)}\n"
        f"bars: tau; lines: {pct} Fieller interval{unbounded_note}"
    )
    ax.legend(
        handles=[
            Patch(facecolor=_POS, edgecolor="k", label=f"Holm p < {alpha:g}"),
            Patch(facecolor=_POS_LIGHT, label="not significant"),
        ],
        loc="best",
        fontsize=8,
    )
    if result.gain_too_small or not fin.any():
        _note(ax, _gain_note(result) if result.gain_too_small else "tau undefined")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# gain vs tax trajectory

_POINT_KEYS = ("strength", "gain", "gnd", "gain_lo", "gain_hi", "gnd_lo", "gnd_hi")


def _point(p: Any) -> dict[str, float]:
    """A trajectory point from a dict or an object with attributes; missing keys are NaN."""
    get = p.get if isinstance(p, Mapping) else (lambda k, d=None: getattr(p, k, d))
    out = {}
    for k in _POINT_KEYS:
        x = get(k, None)
        try:
            out[k] = math.nan if x is None else float(x)
        except (TypeError, ValueError):
            out[k] = math.nan
    return out


def gain_tax_point(result: VATResult, strength: float) -> dict[str, float]:
    """One point for `plot_gain_vs_tax` from a result measured at an intervention strength.

    GND is the bias-corrected one (its interval is centred there); the raw GND where the
    bootstrap was skipped (then there is no interval either).
    """
    g_lo, g_hi = result.intervals.get("gain", (math.nan, math.nan))
    d_lo, d_hi = result.intervals.get("gnd_l1", (math.nan, math.nan))
    bc = result.gnd_l1_bc
    return {
        "strength": float(strength),
        "gain": result.gain,
        "gnd": bc if math.isfinite(bc) else result.gnd_l1,
        "gain_lo": g_lo,
        "gain_hi": g_hi,
        "gnd_lo": d_lo,
        "gnd_hi": d_hi,
    }


def plot_gain_vs_tax(
    points: Iterable[Any],
    path: str | Path,
    *,
    target: str | None = None,
    strength_label: str = "strength",
) -> Path:
    """Trajectory of (gain G, GND) along an intervention's strength axis.

    ``points`` are dicts (or objects) with ``strength``, ``gain``, ``gnd`` and optionally
    ``gain_lo``/``gain_hi``/``gnd_lo``/``gnd_hi`` (a pandas DataFrame's records work too). Points
    are joined in order of strength and labelled by it; finite intervals are drawn as error lines.
    A point whose GND is undefined (gain too small) is an ``x`` on the zero line.
    """
    if hasattr(points, "to_dict"):  # a DataFrame
        points = points.to_dict("records")  # type: ignore[union-attr]
    pts = sorted(
        (_point(p) for p in points), key=lambda q: (math.isnan(q["strength"]), q["strength"])
    )
    fig, ax = plt.subplots(figsize=(7, 5))
    good = [q for q in pts if math.isfinite(q["gain"]) and math.isfinite(q["gnd"])]
    undef = [q for q in pts if math.isfinite(q["gain"]) and not math.isfinite(q["gnd"])]

    def _tag(q: dict[str, float]) -> str:
        return f"{strength_label}={q['strength']:g}" if math.isfinite(q["strength"]) else "?"

    if good:
        xs, ys = [q["gain"] for q in good], [q["gnd"] for q in good]
        ax.plot(xs, ys, color="0.5", lw=1, zorder=2)
        ax.scatter(xs, ys, c=range(len(good)), cmap="viridis", s=50, zorder=4, edgecolor="k")
        for q in good:
            if math.isfinite(q["gain_lo"]) and math.isfinite(q["gain_hi"]):
                ax.hlines(q["gnd"], q["gain_lo"], q["gain_hi"], color="0.3", lw=1, zorder=3)
            if math.isfinite(q["gnd_lo"]) and not math.isnan(q["gnd_hi"]):
                top = q["gnd_hi"]
                if math.isinf(top):  # unbounded above (the gain's interval covers 0): an arrow
                    top = max(ys) * 1.5 if max(ys) > 0 else 1.0
                    ax.annotate("", (q["gain"], top), (q["gain"], q["gnd"]), zorder=3,
                                arrowprops={"arrowstyle": "->", "color": "0.3", "ls": ":"})  # fmt: skip
                ax.vlines(q["gain"], q["gnd_lo"], top, color="0.3", lw=1, zorder=3)
            ax.annotate(
                _tag(q), (q["gain"], q["gnd"]), textcoords="offset points", xytext=(6, 6),
                fontsize=8,
            )  # fmt: skip
    if undef:
        ax.scatter(
            [q["gain"] for q in undef], [0.0] * len(undef), marker="x", color=_NEG, s=50,
            zorder=4, label="GND undefined (gain too small)",
        )  # fmt: skip
        for q in undef:
            ax.annotate(
                _tag(q), (q["gain"], 0.0), textcoords="offset points", xytext=(6, -12), fontsize=8
            )
        ax.legend(fontsize=8, loc="best")
    ax.axvline(0, color="0.6", lw=0.8, ls="--", zorder=1)
    ax.axhline(0, color="0.8", lw=0.8, zorder=1)
    ax.set_xlabel("on-target gain G (score units)")
    ax.set_ylabel("GND (L1, bias-corrected): mean |shift of other values| / |G|")
    title = "Gain vs tax" + (f", target {label(target)}" if target else "")
    ax.set_title(title + "\n(higher = more drift of the other values per unit of gain)")
    if not good and not undef:
        ax.set_xlim(-1, 1)
        ax.set_ylim(0, 1)
        _note(ax, "no point with a defined gain")
    elif not good:
        ax.set_ylim(-0.5, 1)
    ax.grid(color="0.93", zorder=0)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------
# all at once


def make_figures(
    result: VATResult,
    out_dir: str | Path,
    *,
    points: Iterable[Any] | None = None,
) -> dict[str, Path]:
    """Write the standard figures into ``out_dir``; returns ``{name: path}`` for `write_report`.

    Names: ``shift_circumplex``, ``tau``, ``coupling`` and, when trajectory ``points`` are given,
    ``gain_vs_tax`` (files ``<name>.png``).
    """
    out = Path(out_dir)
    figs = {
        "shift_circumplex": plot_shift_circumplex(result, out / "shift_circumplex.png"),
        "tau": plot_tau(result, out / "tau.png"),
        "coupling": plot_coupling(result, out / "coupling.png"),
    }
    if points is not None:
        figs["gain_vs_tax"] = plot_gain_vs_tax(
            points, out / "gain_vs_tax.png", target=result.target
        )
    return figs


def _curve_series(rows: list[Mapping[str, Any]], key: str) -> np.ndarray:
    """A curve column as floats: null -> NaN, the JSON strings "inf"/"-inf" -> +-inf."""
    out = []
    for r in rows:
        x = r.get(key)
        try:
            out.append(math.nan if x is None else float(x))
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out, dtype=float)


def plot_curve(rows: Iterable[Mapping[str, Any]], path: str | Path, *, probe: str = "") -> Path:
    """The VAT curve over training against the global step: gain, GND and nVAT.

    `rows` are `vat_curve.jsonl` rows of one probe (null = undefined, drawn as a gap). Gain with
    its interval; GND bias-corrected with its interval, the raw GND and its noise floor; nVAT
    debiased with its interval, the raw nVAT and its noise floor (rows written before the
    calibrated statistics have only the raw numbers, which are then drawn alone). An interval end
    at infinity is clipped to the panel.
    """
    rows = sorted(rows, key=lambda r: r["step"])
    get = lambda k: _curve_series(rows, k)  # noqa: E731
    steps = get("step")
    fig, axes = plt.subplots(3, 1, figsize=(7, 8.5), sharex=True)
    panels = (
        (axes[0], "gain", "gain", None, None, "gain_lo", "gain_hi", "on-target gain G", _POS),
        (axes[1], "gnd_l1_bc", "gnd_l1", "gnd_l1", "gnd_l1_null", "gnd_lo", "gnd_hi",
         "GND (L1)", _NEG),
        (axes[2], "nvat_offdiag_excess", "nvat_offdiag", "nvat_offdiag", "nvat_offdiag_null",
         "nvat_lo", "nvat_hi", "nVAT (off-diagonal)", "tab:purple"),
    )  # fmt: skip
    for ax, key, fallback, raw_key, null_key, lo_k, hi_k, title, colour in panels:
        y = get(key)
        debiased = key != fallback and np.isfinite(y).any()
        if not debiased:
            y = get(fallback)
        ax.plot(steps, y, marker="o", color=colour,
                label=("bias-corrected" if key == "gnd_l1_bc" else "debiased") if debiased
                else None)  # fmt: skip
        lo, hi = get(lo_k), get(hi_k)
        ok = ~np.isnan(lo) & ~np.isnan(hi)
        if ok.any():
            finite = np.concatenate([y[np.isfinite(y)], lo[np.isfinite(lo)], hi[np.isfinite(hi)]])
            cap = float(np.max(np.abs(finite))) * 1.5 if finite.size else 1.0
            ax.fill_between(steps[ok], np.clip(lo[ok], -cap, cap), np.clip(hi[ok], -cap, cap),
                            alpha=0.2, color=colour)  # fmt: skip
        if debiased and raw_key:
            ax.plot(steps, get(raw_key), color="0.45", lw=1, marker=".", label="raw")
            ax.plot(steps, get(null_key), color="0.45", lw=1, ls=":", label="noise floor")
            ax.legend(fontsize=7, loc="best")
        ax.axhline(0, color="0.5", lw=0.8, ls="--")
        ax.set_ylabel(title)
        if not np.isfinite(y).any():
            _note(ax, "undefined at every step" + (" (gain too small)" if key != "gain" else ""))
    axes[2].set_xlabel("global step")
    axes[0].set_title(f"VAT curve{f' ({probe} probe)' if probe else ''}")
    return _save(fig, path)
