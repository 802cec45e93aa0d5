"""The GPU smoke table: what `launch/gpu_smoke.sh` prints for its runs, one row per strategy
(``python -m vat.launch smoke-report <run dir>...``)."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _floats(rows: list[dict], key: str) -> list[tuple[int, float]]:
    out = []
    for r in rows:
        v = r.get(key)
        if v not in (None, ""):
            out.append((int(float(r.get("step") or 0)), float(v)))
    return out


def smoke_metrics(run_dir: str | Path) -> dict:
    """What `launch/gpu_smoke.sh` prints for one run: step-0 loss, median tokens/s over the steps
    after the first, peak GPU memory (``smoke.json`` from `launch/gpu_smoke.py`) and the final VAT
    gain per probe (``summary.json``)."""
    run_dir = Path(run_dir)
    metrics = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    rows = list(csv.DictReader(metrics[-1].open())) if metrics else []
    losses = _floats(rows, "train/loss")
    # perf/tokens_per_s is per training batch; the first one carries warm-up (and allocation).
    tps = [v for s, v in _floats(rows, "perf/tokens_per_s") if s > 0] or [
        v for _, v in _floats(rows, "perf/tokens_per_s")
    ]
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "step0_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "steps": max((s for s, _ in losses), default=-1) + 1,
        "tokens_per_s": statistics.median(tps) if tps else None,
    }
    smoke = run_dir / "smoke.json"
    if smoke.is_file():
        out.update(json.loads(smoke.read_text()))
    summary = run_dir / "summary.json"
    if summary.is_file():
        final = json.loads(summary.read_text()).get("final", {})
        out["gain"] = {probe: f.get("gain") for probe, f in final.items()}
    return out


def smoke_table(results: Sequence[dict]) -> str:
    """The markdown table of `smoke_metrics` results, one row per run."""

    def num(v, fmt):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = [
        "| run | status | steps | step-0 loss | tokens/s (median) "
        "| peak GPU mem alloc / reserved (GiB) | wall (s) | VAT gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gain = ", ".join(f"{k} {num(v, '.3f')}" for k, v in (r.get("gain") or {}).items()) or "-"
        alloc, reserved = r.get("peak_mem_allocated_gib"), r.get("peak_mem_reserved_gib")
        mem = f"{num(alloc, '.2f')} / {num(reserved, '.2f')}"
        lines.append(
            f"| {Path(r['run_dir']).name} | {r.get('status', '?')} | {r['steps']} | "
            f"{num(r['step0_loss'], '.4f')} | {num(r['tokens_per_s'], '.0f')} | {mem} | "
            f"{num(r.get('wall_s'), '.0f')} | {gain} |"
        )
    return "\n".join(lines)
