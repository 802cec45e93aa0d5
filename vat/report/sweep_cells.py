"""What a sweep's cells wrote, read into the sweep report's tables.

A cell's status comes from the sweep manifest and its own ``status.json`` (`vat.sweep.manifest`);
its model, target value and method from its saved ``config.yaml`` (or its overrides, for a cell
that never started); its results from the files it wrote: ``report_<probe>/vat.json`` +
``vat_curve.jsonl`` (sft, dpo), ``<probe>/vat.json`` (``method=prompting``) or ``vat.json`` (an
``evaluate.py`` sweep). `collect` turns them into the sweep table (one row per cell and probe at
its last point, with Benjamini-Hochberg p-values across the rows), the tau long form and the
trajectories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from vat.metrics import benjamini_hochberg
from vat.metrics.fields import BY_NAME, SWEEP, TRAJECTORY, flat_row, names
from vat.results import FINISHED, cell_meta, cell_results
from vat.sweep.manifest import STATUS, read_json, read_manifest

#: p-value columns adjusted by Benjamini-Hochberg across the table's rows -> their adjusted column.
BH_COLUMNS = {"p_gain": "p_gain_bh", "p_nvat": "p_nvat_bh", "p_drift": "p_drift_bh",
              "p_circumplex": "p_circumplex_bh"}  # fmt: skip
#: The sweep table: what the cell is, then the sweep fields (`vat.metrics.fields`), each p-value
#: followed by its BH-adjusted column.
TABLE_COLUMNS = ["model", "value", "method", "probe", "point",
                 *[c for f in names(SWEEP) for c in (f, BH_COLUMNS.get(f)) if c], "cell"]  # fmt: skip
#: Columns of a trajectory point (curve rows and per-strength results share these names).
TRAJ_KEYS = tuple(names(TRAJECTORY))


def _num(x: Any) -> float | None:
    """A float for the table: None stays None (missing), "inf"/"-inf" become +-inf.

    Unlike `vat.report.format.num` (NaN for anything undefined), the table keeps None for a
    missing or unreadable number."""
    if x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- reading cells
def sweep_cells(sweep_dir: Path) -> dict[str, dict]:
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


def point_row(res: dict) -> dict[str, Any]:
    """The sweep table's fields from a `VATResult.to_dict` (a vat.json result) or a curve row.

    A result written before a field existed lacks it: it comes back missing (None), never as
    another number under its name."""
    row = flat_row(res, SWEEP)
    row = {k: v if BY_NAME[k].fmt in ("list", "int") else _num(v) for k, v in row.items()}
    row["hubs"] = ",".join(row["hubs"] or [])
    row["gain_too_small"] = bool(res.get("gain_too_small"))
    return row


def collect(sweep_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict]]:
    """(table, tau long form, trajectories, cells not done) of a sweep dir."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir}: no such directory")
    table, taus, trajs, pending = [], [], [], []
    value_order: dict[str, int] = {}
    for name, c in sweep_cells(sweep_dir).items():
        cell_dir = sweep_dir / name
        meta = cell_meta(cell_dir, c.get("overrides") or [])
        results = cell_results(cell_dir) if c.get("status") in FINISHED else []
        if not results:
            pending.append({"cell": name, **meta, "status": c.get("status", "unknown"),
                            "error": c.get("error")})  # fmt: skip
            continue
        for r in results:
            key = {**meta, "probe": r["probe"]}
            table.append({**key, "point": r["point"], **point_row(r["final"]), "cell": name})
            values = list(r["final"].get("values") or [])
            rank = {v: i for i, v in enumerate(values)}  # the taxonomy's order of the columns
            value_order.update({v: i for v, i in rank.items() if v not in value_order})
            for v, t in (r["final"].get("tau") or {}).items():
                shift = (r["final"].get("mean_shift") or {}).get(v)
                p_holm = (r["final"].get("p_holm") or {}).get(v)
                taus.append({**key, "target": meta["value"], "of_value": v, "tau": t,
                             "shift": shift, "p_holm": _num(p_holm), "cell": name,
                             "order": rank.get(v), "target_order": rank.get(meta["value"]),
                             "gain_bounded": bool(r["final"].get("gain_bounded", True))})  # fmt: skip
            trajs += [{**key, **p, "cell": name} for p in r["trajectory"]]
    table_df = add_bh(pd.DataFrame(table, columns=TABLE_COLUMNS))
    table_df = table_df.sort_values(
        ["model", "method", "probe", "value"],
        key=lambda s: s.map(value_order) if s.name == "value" else s,
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
