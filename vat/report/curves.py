"""Figures along an axis, as PNG files: how the gain and the tax move as an intervention is pushed.

- `plot_gain_vs_tax`: (gain, GND) along an intervention's strength (few-shot k, a lambda), one
  point per strength, from `gain_tax_point`s;
- `plot_curve`: gain, GND and nVAT of one probe over the training steps (``vat_curve.jsonl``);
- `plot_trajectories`: a sweep's gain against GND over checkpoints or shots, one line per cell.

Like `vat.report.figures`, each writes one PNG, closes it, returns the path, and draws an undefined
number as a gap or a note, never an error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from vat.metrics import VATResult
from vat.report.format import label, num
from vat.report.plotting import NEG, POS, floats, note, save_figure, subplots

_POINT_KEYS = ("strength", "gain", "gnd", "gain_lo", "gain_hi", "gnd_lo", "gnd_hi")


def _point(p: Any) -> dict[str, float]:
    """A trajectory point from a dict or an object with attributes; missing keys are NaN."""
    get = p.get if isinstance(p, Mapping) else (lambda k, d=None: getattr(p, k, d))
    return {k: num(get(k, None)) for k in _POINT_KEYS}


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
    fig, ax = subplots(figsize=(7, 5))
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
            [q["gain"] for q in undef], [0.0] * len(undef), marker="x", color=NEG, s=50,
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
        note(ax, "no point with a defined gain")
    elif not good:
        ax.set_ylim(-0.5, 1)
    ax.grid(color="0.93", zorder=0)
    return save_figure(fig, path)


def plot_curve(rows: Iterable[Mapping[str, Any]], path: str | Path, *, probe: str = "") -> Path:
    """The VAT curve over training against the global step: gain, GND and nVAT.

    `rows` are `vat_curve.jsonl` rows of one probe (null = undefined, drawn as a gap). Gain with
    its interval; GND bias-corrected with its interval, the raw GND and its noise floor; nVAT
    debiased with its interval, the raw nVAT and its noise floor (rows written before the
    calibrated statistics have only the raw numbers, which are then drawn alone). An interval end
    at infinity is clipped to the panel.
    """
    rows = sorted(rows, key=lambda r: r["step"])
    get = lambda k: floats(r.get(k) for r in rows)  # noqa: E731
    steps = get("step")
    fig, axes = subplots(3, 1, figsize=(7, 8.5), sharex=True)
    panels = (
        (axes[0], "gain", "gain", None, None, "gain_lo", "gain_hi", "on-target gain G", POS),
        (axes[1], "gnd_l1_bc", "gnd_l1", "gnd_l1", "gnd_l1_null", "gnd_lo", "gnd_hi",
         "GND (L1)", NEG),
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
            note(ax, "undefined at every step" + (" (gain too small)" if key != "gain" else ""))
    axes[2].set_xlabel("global step")
    axes[0].set_title(f"VAT curve{f' ({probe} probe)' if probe else ''}")
    return save_figure(fig, path)


def _gnd_series(g: pd.DataFrame) -> np.ndarray:
    """Bias-corrected GND of a trajectory; the raw GND where a point has none (no bootstrap, or a
    result written before the calibrated statistics)."""
    raw = pd.to_numeric(g["gnd_l1"], errors="coerce").to_numpy(float)
    if "gnd_l1_bc" not in g:
        return raw
    bc = pd.to_numeric(g["gnd_l1_bc"], errors="coerce").to_numpy(float)
    return np.where(np.isfinite(bc), bc, raw)


def plot_trajectories(traj: pd.DataFrame, path: Path, probe: str) -> Path:
    """Gain (x) against GND (y) over checkpoints or shots: a panel per method, a line per cell."""
    methods = sorted(traj["method"].unique())
    fig, axes = subplots(1, len(methods), figsize=(5.5 * len(methods), 4.5), squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        sub = traj[traj["method"] == m]
        for (model, value), g in sub.groupby(["model", "value"], sort=True):
            g = g.sort_values("x")
            x = pd.to_numeric(g["gain"], errors="coerce").to_numpy(float)
            y = _gnd_series(g)
            (line,) = ax.plot(x, y, marker="o", label=f"{label(value)} ({model})")
            if len(g):
                ax.annotate(f"{g['axis'].iloc[-1]} {g['x'].iloc[-1]}", (x[-1], y[-1]),
                            fontsize=7, color=line.get_color(), xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
        ax.axvline(0, color="0.6", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        ax.set_xlabel("on-target gain G (GND undefined where the gain is below eps)")
        ax.set_ylabel("tax: GND (L1), bias-corrected where bootstrapped")
        ax.set_title(f"{m} ({probe} probe)")
        ax.legend(fontsize=7)
    return save_figure(fig, path)
