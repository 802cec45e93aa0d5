"""The sweep report: every finished cell of a sweep in one table, tax matrix and trajectory figures.

``python evaluate.py sweep_dir=<sweep dir>`` (or ``python -m vat.report.sweep <sweep dir>``) reads
each cell's own outputs and writes ``<sweep dir>/report/``:

- ``sweep_table.csv`` / ``.parquet``: one row per (model, target value, method, probe) at the cell's
  last point (last checkpoint, or strongest prompt): gain with its interval and bootstrap-t p; GND
  bias-corrected with its interval, raw and noise floor, and the drift test; nVAT debiased
  (``nvat_excess``, the headline) with its interval, raw (``nvat_offdiag``) and its noise floor,
  and the permutation p; hubs; circumplex consistency with its Mantel p; and ``p_gain_bh``,
  ``p_nvat_bh``, ``p_drift_bh``, ``p_circumplex_bh``: Benjamini-Hochberg adjusted across the rows
  of the table (the cells of the sweep; cell x probe when several probes ran). Holm corrections
  stay within one comparison (the values of one result);
- ``tax_matrix.csv`` and ``tax_matrix_<model>_<method>_<probe>.png``: rows = aligned value, columns =
  the shift of every value per unit gain (tau; the target's own column is blank);
- ``trajectories.csv`` and ``trajectories_<probe>.png``: gain against GND over checkpoints (SFT,
  DPO) or shots (prompting), one panel per method, one line per cell;
- ``repeats.csv``, ``net_of_placebo.csv``, ``regression.csv`` (`vat.report.controls`): cells that
  differ only by seed pooled into one row with intervals over seeds and scenes, the tax net of a
  placebo arm (``method=dpo_placebo`` ...) per value, and the referee's regression;
- ``report.md`` and ``report.html``: the tables, the circumplex-consistency summary, the figures and
  the cells that are not (yet) finished, with their status and error.

A cell's results come from the files it wrote: ``report_<probe>/vat.json`` + ``vat_curve.jsonl``
(sft, dpo), ``<probe>/vat.json`` (``method=prompting``) or ``vat.json`` (an ``evaluate.py`` sweep).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from vat.metrics import benjamini_hochberg
from vat.report.controls import controls_section
from vat.report.markdown import fmt, fmt_interval, fmt_p, label
from vat.sweep import STATUS, read_json, read_manifest
from vat.values import BASIC_VALUES

log = logging.getLogger(__name__)

TABLE_COLUMNS = [
    "model", "value", "method", "probe", "point", "gain", "gain_lo", "gain_hi", "p_gain",
    "p_gain_bh", "gnd_l1", "gnd_l1_bc", "gnd_l1_null", "gnd_lo", "gnd_hi", "p_drift", "p_drift_bh",
    "nvat_excess", "nvat_lo", "nvat_hi", "nvat_offdiag", "nvat_offdiag_null", "p_nvat", "p_nvat_bh",
    "circumplex_consistency", "p_circumplex", "p_circumplex_bh", "hubs", "gain_too_small", "n_scenes", "ci", "cell",
]  # fmt: skip
#: p-value columns adjusted by Benjamini-Hochberg across the table's rows -> their adjusted column.
BH_COLUMNS = {"p_gain": "p_gain_bh", "p_nvat": "p_nvat_bh", "p_drift": "p_drift_bh",
              "p_circumplex": "p_circumplex_bh"}  # fmt: skip
#: Columns of a trajectory point (curve rows and per-strength results share these names).
TRAJ_KEYS = ("gain", "gain_lo", "gain_hi", "gnd_l1", "gnd_l1_bc", "gnd_lo", "gnd_hi",
             "nvat_offdiag", "nvat_excess", "nvat_lo", "nvat_hi")  # fmt: skip


def _num(x: Any) -> float | None:
    """A float for the table: None stays None (missing), "inf"/"-inf" become +-inf."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- reading cells
def _cells(sweep_dir: Path) -> dict[str, dict]:
    """Manifest entries, plus any cell dir with a status or config file the manifest lacks."""
    cells = {n: dict(c) for n, c in read_manifest(sweep_dir)["cells"].items()}
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name != "report"):
        if d.name not in cells and ((d / STATUS).exists() or (d / "config.yaml").exists()):
            cells[d.name] = {"status": "unknown", "dir": str(d)}
    for name, c in cells.items():
        st = read_json(sweep_dir / name / STATUS)
        if st:  # the cell's own file is the latest word on it
            c.update({k: st[k] for k in ("status", "error", "finished") if k in st})
    return cells


def _meta(cell_dir: Path, overrides: list[str]) -> dict[str, str]:
    """Model, target value and method (or intervention) of a cell, from its saved config."""
    meta = {"model": "?", "value": "?", "method": "?"}
    if (cell_dir / "config.yaml").is_file():
        cfg = OmegaConf.load(cell_dir / "config.yaml")
        meta["model"] = str(OmegaConf.select(cfg, "model.name", default="?"))
        meta["value"] = str(OmegaConf.select(cfg, "value.name", default="?"))
        method = OmegaConf.select(cfg, "method.name", default=None)
        if method is None:  # an evaluate.py cell: the intervention or the checkpoint
            post = OmegaConf.select(cfg, "post_model", default=None)
            method = "checkpoint" if post else _intervention_name(cfg)
        meta["method"] = str(method)
    for o in overrides:  # cells that never started have no config yet
        k, _, v = o.partition("=")
        if k in meta and meta[k] == "?":
            meta[k] = v
    return meta


def _intervention_name(cfg) -> str:
    """An evaluate.py cell's intervention as its class names it (prompting, prompting_placebo)."""
    target = str(OmegaConf.select(cfg, "intervention._target_", default="") or "")
    if target.endswith(".Prompting"):
        return "prompting_placebo" if OmegaConf.select(cfg, "intervention.placebo") else "prompting"
    if target.endswith(".NoIntervention"):
        return "none"
    return str(OmegaConf.select(cfg, "intervention.name", default="?"))


def _point_row(res: dict) -> dict[str, Any]:
    """The table's numbers from a `VATResult.to_dict` (a vat.json result) or a curve row.

    A result written before the calibrated statistics lacks the nulls and the debiased numbers:
    they come back missing (None), never as a raw number under a debiased name.
    """
    iv = res.get("intervals") or {}
    lo_hi = lambda k, lo, hi: iv.get(k) or [res.get(lo), res.get(hi)]  # noqa: E731
    g, d, nv = (lo_hi("gain", "gain_lo", "gain_hi"), lo_hi("gnd_l1", "gnd_lo", "gnd_hi"),
                lo_hi("nvat_offdiag", "nvat_lo", "nvat_hi"))  # fmt: skip
    n = lambda k: _num(res.get(k))  # noqa: E731
    return {
        "gain": n("gain"),
        "gain_lo": _num(g[0]),
        "gain_hi": _num(g[1]),
        "p_gain": n("p_gain"),
        "gnd_l1": n("gnd_l1"),
        "gnd_l1_bc": n("gnd_l1_bc"),
        "gnd_l1_null": n("gnd_l1_null"),
        "gnd_lo": _num(d[0]),
        "gnd_hi": _num(d[1]),
        "p_drift": n("p_drift"),
        "nvat_excess": n("nvat_offdiag_excess"),
        "nvat_lo": _num(nv[0]),
        "nvat_hi": _num(nv[1]),
        "nvat_offdiag": n("nvat_offdiag"),
        "nvat_offdiag_null": n("nvat_offdiag_null"),
        "p_nvat": n("p_nvat"),
        "circumplex_consistency": n("circumplex_consistency"),
        "p_circumplex": n("p_circumplex"),
        "hubs": ",".join(res.get("hubs") or []),
        "gain_too_small": bool(res.get("gain_too_small")),
        "n_scenes": res.get("n_scenes"),
        "ci": n("ci"),
    }


def _cell_results(cell_dir: Path) -> list[dict]:
    """Per probe: ``{"probe", "final": full result dict, "point", "trajectory": [rows]}``."""
    out = []
    curve = cell_dir / "vat_curve.jsonl"
    rows = (
        [json.loads(x) for x in curve.read_text(encoding="utf-8").splitlines() if x.strip()]
        if curve.is_file()
        else []
    )
    for f in sorted(cell_dir.glob("report_*/vat.json")):  # sft / dpo: last checkpoint + curve
        res = json.loads(f.read_text(encoding="utf-8"))
        probe = res.get("probe", f.parent.name.removeprefix("report_"))
        traj = [{"axis": "step", "x": r["step"], **{k: v for k, v in _point_row(r).items()
                 if k in TRAJ_KEYS}} for r in rows if r["probe"] == probe]  # fmt: skip
        out.append({"probe": probe, "final": res, "point": f"step {res.get('step')}",
                    "trajectory": traj})  # fmt: skip
    vat_files = sorted(cell_dir.glob("*/vat.json")) + sorted(cell_dir.glob("vat.json"))
    for f in vat_files:  # prompting / evaluate: one result per strength
        if f.parent.name.startswith("report_"):
            continue
        payload = json.loads(f.read_text(encoding="utf-8"))
        results = payload.get("results") or []
        if not results:
            continue
        traj = [{"axis": "k", "x": r.get("strength"), **{k: v for k, v in _point_row(r).items()
                 if k in TRAJ_KEYS}} for r in results]  # fmt: skip
        last = results[-1]
        point = "checkpoint" if last.get("strength") is None else f"k={last['strength']}"
        out.append({"probe": payload.get("probe", f.parent.name), "final": last, "point": point,
                    "trajectory": traj})  # fmt: skip
    return out


def collect(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict]]:
    """(table, tau long form, trajectories, cells not done) of a sweep dir."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: no such directory")
    table, taus, trajs, pending = [], [], [], []
    for name, c in _cells(sweep_dir).items():
        cell_dir = sweep_dir / name
        meta = _meta(cell_dir, c.get("overrides") or [])
        results = _cell_results(cell_dir) if c.get("status") in ("done", "unknown") else []
        if not results:
            pending.append({"cell": name, **meta, "status": c.get("status", "unknown"),
                            "error": c.get("error")})  # fmt: skip
            continue
        for r in results:
            key = {**meta, "probe": r["probe"]}
            table.append({**key, "point": r["point"], **_point_row(r["final"]), "cell": name})
            for v, t in (r["final"].get("tau") or {}).items():
                shift = (r["final"].get("mean_shift") or {}).get(v)
                p_holm = (r["final"].get("p_holm") or {}).get(v)
                taus.append({**key, "target": meta["value"], "of_value": v, "tau": t,
                             "shift": shift, "p_holm": _num(p_holm), "cell": name})  # fmt: skip
            trajs += [{**key, **p, "cell": name} for p in r["trajectory"]]
    table_df = add_bh(pd.DataFrame(table, columns=TABLE_COLUMNS))
    order = {v: i for i, v in enumerate(BASIC_VALUES)}
    table_df = table_df.sort_values(
        ["model", "method", "probe", "value"],
        key=lambda s: s.map(order) if s.name == "value" else s,
    ).reset_index(drop=True)
    return table_df, pd.DataFrame(taus), pd.DataFrame(trajs), pending


def add_bh(table: pd.DataFrame) -> pd.DataFrame:
    """The ``*_bh`` columns: Benjamini-Hochberg across the table's rows (`BH_COLUMNS`).

    The family is the sweep's comparisons, one per row (cell, or cell x probe); a row whose p is
    undefined stays undefined and does not count toward the family's size.
    """
    out = table.copy()
    for p, bh in BH_COLUMNS.items():
        vals = pd.to_numeric(out[p], errors="coerce").to_numpy(float)
        out[bh] = benjamini_hochberg(vals) if len(vals) else vals
    return out


# ---------------------------------------------------------------------------- figures
def plot_tax_matrix(tau: pd.DataFrame, path: Path, title: str, alpha: float = 0.05) -> Path:
    """Aligned value (rows) x every value (columns): tau, the shift per unit gain; ``*`` marks a
    shift whose Holm-adjusted p (across that cell's other values) is below `alpha`."""
    from vat.report.figures import _save, plt

    targets = [v for v in BASIC_VALUES if v in set(tau["target"])]
    M = np.full((len(targets), len(BASIC_VALUES)), np.nan)
    sig = np.zeros_like(M, dtype=bool)
    for r in tau.itertuples():
        if r.of_value in BASIC_VALUES and r.tau is not None:
            M[targets.index(r.target), BASIC_VALUES.index(r.of_value)] = float(r.tau)
            p = getattr(r, "p_holm", None)
            sig[targets.index(r.target), BASIC_VALUES.index(r.of_value)] = (
                p is not None and np.isfinite(p) and p < alpha
            )
    lim = float(np.nanmax(np.abs(M))) if np.isfinite(M).any() else 1.0
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(BASIC_VALUES), 1.4 + 0.5 * len(targets)))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(M), cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            txt = (
                "target"
                if BASIC_VALUES[j] == targets[i]
                else fmt(M[i, j], 2) + ("*" if sig[i, j] else "")
            )
            ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(M[i, j]) and abs(M[i, j]) > 0.6 * lim else "black")  # fmt: skip
    ax.set_xticks(
        range(len(BASIC_VALUES)), [label(v) for v in BASIC_VALUES], rotation=45, ha="right"
    )
    ax.set_yticks(range(len(targets)), [label(v) for v in targets])
    ax.set_xlabel("value whose score moved")
    ax.set_ylabel("aligned toward")
    ax.set_title(title + f"\n(* Holm p < {alpha:g})" + ("\n(n/a: on-target gain below eps, tau "
                          "undefined)" if np.isnan(M).sum() > len(targets) else ""))  # fmt: skip
    fig.colorbar(im, ax=ax, label="tau: shift per unit on-target gain")
    return _save(fig, path)


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
    from matplotlib.ticker import MaxNLocator

    from vat.report.figures import _save, plt

    methods = sorted(traj["method"].unique())
    fig, axes = plt.subplots(1, len(methods), figsize=(5.5 * len(methods), 4.5), squeeze=False)
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
    return _save(fig, path)


# ---------------------------------------------------------------------------- report
def _md_table(df: pd.DataFrame) -> list[str]:
    if df.empty:
        return ["_none_", ""]
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return [*lines, ""]


def _display_table(table: pd.DataFrame) -> pd.DataFrame:
    def iv(r, k, lo, hi):
        return f"{fmt(r[k])} {fmt_interval((r[lo], r[hi]))}"

    rows = [r for _, r in table.iterrows()]
    return pd.DataFrame(
        {
            "model": table["model"],
            "target": [label(v) for v in table["value"]],
            "method": table["method"],
            "probe": table["probe"],
            "at": table["point"],
            "gain [CI]": [iv(r, "gain", "gain_lo", "gain_hi") for r in rows],
            "gain p (BH)": [f"{fmt_p(r['p_gain'])} ({fmt_p(r['p_gain_bh'])})" for r in rows],
            "GND b.-c. [CI]": [iv(r, "gnd_l1_bc", "gnd_lo", "gnd_hi") for r in rows],
            "GND raw / floor": [f"{fmt(r['gnd_l1'])} / {fmt(r['gnd_l1_null'])}" for r in rows],
            "nVAT debiased [CI]": [iv(r, "nvat_excess", "nvat_lo", "nvat_hi") for r in rows],
            "nVAT raw / floor": [
                f"{fmt(r['nvat_offdiag'])} / {fmt(r['nvat_offdiag_null'])}" for r in rows
            ],
            "nVAT p (BH)": [f"{fmt_p(r['p_nvat'])} ({fmt_p(r['p_nvat_bh'])})" for r in rows],
            "hubs": [", ".join(label(h) for h in s.split(",") if h) for s in table["hubs"]],
            "circumplex (Mantel p; BH)": [
                f"{fmt(r['circumplex_consistency'], 2)} ({fmt_p(r['p_circumplex'])}; "
                f"{fmt_p(r['p_circumplex_bh'])})"
                for r in rows
            ],
        }
    )


def _alpha(table: pd.DataFrame) -> float:
    """1 - the cells' interval level when they share one, else 0.05."""
    ci = pd.to_numeric(table["ci"], errors="coerce").dropna().unique()
    return float(1 - ci[0]) if len(ci) == 1 and 0 < ci[0] < 1 else 0.05


def _families_text(table: pd.DataFrame) -> str:
    """What each correction covers, and how many rows pass BH at the cells' level."""
    alpha = _alpha(table)
    n_rows = len(table)
    n_cells = table["cell"].nunique() if n_rows else 0
    fam = (
        f"the {n_rows} cells of this sweep"
        if n_rows == n_cells
        else f"the {n_rows} rows of this sweep's table ({n_cells} cells x their probes)"
    )
    counts = []
    for bh, what in (("p_gain_bh", "a gain"), ("p_nvat_bh", "coupling above its noise floor")):
        q = pd.to_numeric(table[bh], errors="coerce")
        if q.notna().any():
            counts.append(f"{int((q < alpha).sum())} of {int(q.notna().sum())} show {what}")
    return (
        "Each cell's p-values are its own tests: the gain's is a bootstrap-t test, nVAT's a "
        "permutation test against the column-permutation null, circumplex consistency's a Mantel "
        "test; the per-value p-values in each cell's report are Holm-corrected within that "
        "comparison (across its non-target values). The BH values beside them, and the "
        "`p_gain_bh`, `p_nvat_bh`, `p_drift_bh`, `p_circumplex_bh` columns of "
        f"`sweep_table.csv`, are Benjamini-Hochberg adjusted across {fam}: they "
        "control the false discovery rate over the sweep, so read a cell as significant only "
        f"by its BH-adjusted p (< {alpha:g})"
        + (f"; at that level {', '.join(counts)}." if counts else ".")
    )


def _consistency_summary(table: pd.DataFrame) -> pd.DataFrame:
    if table.empty:
        return pd.DataFrame()
    cc = table.assign(cc=pd.to_numeric(table["circumplex_consistency"], errors="coerce"))
    g = cc.groupby(["model", "method", "probe"])["cc"]
    out = g.agg(["count", "mean", "min", "max"]).reset_index()
    for k in ("mean", "min", "max"):
        out[k] = [fmt(x, 2) for x in out[k]]
    return out.rename(columns={"count": "targets"})


def build_sweep_report(sweep_dir: str | Path, wandb_cfg: dict | None = None) -> Path:
    """Aggregate a sweep dir's finished cells into ``<sweep_dir>/report/``; returns report.md."""
    sweep_dir = Path(sweep_dir)
    table, tau, traj, pending = collect(sweep_dir)
    out = sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "sweep_table.csv", index=False)
    table.astype({"n_scenes": "Int64"}).to_parquet(out / "sweep_table.parquet", index=False)
    tau.to_csv(out / "tax_matrix.csv", index=False)
    traj.to_csv(out / "trajectories.csv", index=False)
    pd.DataFrame(pending, columns=["cell", "model", "value", "method", "status", "error"]).to_csv(
        out / "unfinished.csv", index=False
    )

    figures: list[tuple[str, Path]] = []
    if not tau.empty:
        for (model, method, probe), g in tau.groupby(["model", "method", "probe"], sort=True):
            p = out / f"tax_matrix_{model}_{method}_{probe}.png"
            figures.append((f"Tax matrix: {model}, {method}, {probe} probe",
                            plot_tax_matrix(g, p, f"{model} · {method} · {probe}",
                                            alpha=_alpha(table) if not table.empty else 0.05)))  # fmt: skip
    if not traj.empty:
        for probe, g in traj.groupby("probe", sort=True):
            figures.append((f"Gain vs tax trajectories ({probe} probe)",
                            plot_trajectories(g, out / f"trajectories_{probe}.png", probe)))  # fmt: skip

    n_cells = len(table["cell"].unique()) if not table.empty else 0
    shown = _display_table(table) if not table.empty else pd.DataFrame()
    cons = _consistency_summary(table)
    unfinished = pd.DataFrame(pending, columns=["cell", "status", "error"]).fillna("")
    families = _families_text(table) if not table.empty else ""
    controls = controls_section(sweep_dir, out, _cells(sweep_dir), _meta,
                                ci=1 - _alpha(table) if not table.empty else 0.95)  # fmt: skip
    lines = [
        f"# Sweep report: `{sweep_dir.name}`",
        "",
        f"{n_cells} finished cells, {len(pending)} not finished. Each row is a cell's last point "
        "(last checkpoint, or the strongest prompt); intervals are those of the run's metrics "
        "config (gain: bootstrap-t; GND: bias-corrected, beside its raw value and noise floor; "
        "nVAT: debiased against its permutation null, beside the raw value and that null). "
        "Tables as data: `sweep_table.csv` / `.parquet`, `tax_matrix.csv`, `trajectories.csv`.",
        "",
        "## Gain and tax per cell",
        "",
        *_md_table(shown),
        *([families, ""] if families else []),
        *controls,
        "## Circumplex consistency",
        "",
        "Spearman correlation, over value pairs, of their coupling with their closeness on "
        "Schwartz's circle (+1: neighbours co-move, opposites trade off, as the theory "
        "predicts); each cell's Mantel p (and its BH adjustment) is in the table above.",
        "",
        *_md_table(cons),
        "## Cells not finished",
        "",
        *_md_table(unfinished),
    ]
    for title, p in figures:
        lines += [f"## {title}", "", f"![{title}]({p.name})", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    _write_html(out / "report.html", sweep_dir.name, n_cells, shown, cons, unfinished, figures,
                families)  # fmt: skip
    if wandb_cfg:
        log_to_wandb(wandb_cfg, table, figures)
    return md


def _write_html(path, name, n_cells, shown, cons, unfinished, figures, families="") -> None:
    def tab(df: pd.DataFrame) -> str:
        return "<p><em>none</em></p>" if df.empty else df.to_html(index=False, border=0)

    body = [
        f"<h1>Sweep report: {html.escape(name)}</h1>",
        f"<p>{n_cells} finished cells, {len(unfinished)} not finished.</p>",
        "<h2>Gain and tax per cell</h2>", tab(shown),
        f"<p>{html.escape(families)}</p>" if families else "",
        "<h2>Circumplex consistency</h2>", tab(cons),
        "<h2>Cells not finished</h2>", tab(unfinished),
    ]  # fmt: skip
    for title, p in figures:
        body += [f"<h2>{html.escape(title)}</h2>", f'<img src="{html.escape(p.name)}" alt="">']
    css = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
           "table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;"
           "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}")  # fmt: skip
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{css}</style></head><body>{''.join(body)}</body></html>",
        encoding="utf-8",
    )


def log_to_wandb(wandb_cfg: dict, table: pd.DataFrame, figures: list[tuple[str, Path]]) -> None:
    """The sweep table and figures as one W&B run (job type ``sweep_report``) in the sweep's group."""
    try:
        import wandb

        from vat.loggers import wandb_mode

        run = wandb.init(project=wandb_cfg.get("project", "vat"), group=wandb_cfg.get("group"),
                         job_type="sweep_report", name=f"{wandb_cfg.get('group')}-report",
                         dir=wandb_cfg.get("save_dir"), mode=wandb_mode(), reinit="finish_previous")  # fmt: skip
        clean = table.astype(object).where(table.notna(), None)
        run.log({"sweep/table": wandb.Table(dataframe=clean)})
        for title, p in figures:
            run.log({f"sweep/{p.stem}": wandb.Image(str(p), caption=title)})
        run.finish()
    except Exception as e:  # the report on disk is what matters; W&B is a copy of it
        log.warning("could not log the sweep report to W&B: %s", e)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Aggregate a vat sweep dir into a report.")
    ap.add_argument("sweep_dir")
    args = ap.parse_args(argv)
    print(build_sweep_report(args.sweep_dir))


if __name__ == "__main__":
    main()
