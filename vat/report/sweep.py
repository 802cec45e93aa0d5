"""The sweep report: every finished cell of a sweep in one table, tax matrix and trajectory figures.

``python evaluate.py sweep_dir=<sweep dir>`` (or ``python -m vat.report.sweep <sweep dir>``) reads
each cell's own outputs and writes ``<sweep dir>/report/``:

- ``sweep_table.csv`` / ``.parquet``: one row per (model, target value, method, probe) at the cell's
  last point (last checkpoint, or strongest prompt): gain with its interval and bootstrap-t p; GND
  bias-corrected with its interval, raw and noise floor, and the drift test; nVAT debiased
  (``nvat_offdiag_excess``, the headline) with its interval, raw (``nvat_offdiag``) and its noise floor,
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

A cell's results come from the files it wrote (`vat.report.sweep_cells`); the figures are
`vat.report.figures.plot_tax_matrix` and `vat.report.curves.plot_trajectories`.
"""

from __future__ import annotations

import argparse
import html
import logging
from pathlib import Path

import pandas as pd

from vat.report.controls import controls_section
from vat.report.curves import plot_trajectories
from vat.report.figures import plot_tax_matrix
from vat.report.format import ALPHA, alpha_for, fmt, fmt_estimate, fmt_p, label, md_frame
from vat.report.sweep_cells import collect, sweep_cells

log = logging.getLogger(__name__)


def _display_table(table: pd.DataFrame) -> pd.DataFrame:
    def iv(r, k, lo, hi):
        return fmt_estimate(r[k], (r[lo], r[hi]))

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
            "nVAT debiased [CI]": [
                iv(r, "nvat_offdiag_excess", "nvat_lo", "nvat_hi") for r in rows
            ],
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
    return alpha_for(ci[0]) if len(ci) == 1 else ALPHA


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

    alpha = _alpha(table)  # 0.05 for an empty table
    figures: list[tuple[str, Path]] = []
    if not tau.empty:
        for (model, method, probe), g in tau.groupby(["model", "method", "probe"], sort=True):
            p = out / f"tax_matrix_{model}_{method}_{probe}.png"
            figures.append((f"Tax matrix: {model}, {method}, {probe} probe",
                            plot_tax_matrix(g, p, f"{model} · {method} · {probe}", alpha=alpha)))  # fmt: skip
    if not traj.empty:
        for probe, g in traj.groupby("probe", sort=True):
            figures.append((f"Gain vs tax trajectories ({probe} probe)",
                            plot_trajectories(g, out / f"trajectories_{probe}.png", probe)))  # fmt: skip

    n_cells = len(table["cell"].unique()) if not table.empty else 0
    shown = _display_table(table) if not table.empty else pd.DataFrame()
    cons = _consistency_summary(table)
    unfinished = pd.DataFrame(pending, columns=["cell", "status", "error"]).fillna("")
    families = _families_text(table) if not table.empty else ""
    controls = controls_section(sweep_dir, out, sweep_cells(sweep_dir), ci=1 - alpha)
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
        *md_frame(shown),
        *([families, ""] if families else []),
        *controls,
        "## Circumplex consistency",
        "",
        "Spearman correlation, over value pairs, of their coupling with their closeness on "
        "Schwartz's circle (+1: neighbours co-move, opposites trade off, as the theory "
        "predicts); each cell's Mantel p (and its BH adjustment) is in the table above.",
        "",
        *md_frame(cons),
        "## Cells not finished",
        "",
        *md_frame(unfinished),
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
