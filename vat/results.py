"""A run's results on disk: the one module that writes them and reads them back.

Where a run writes (the layouts readers used to glob for, one per entry point):

- ``train.py`` (sft, dpo, orpo): ``vat_curve.jsonl`` (one row per step and probe, `vat.io`),
  ``report_<probe>/vat.json`` (the last point's full result, `write_final`), item scores
  ``states_pre_<probe>/`` and ``states/step<N>_<probe>/``;
- ``evaluate.py``: ``vat.json`` (every strength's full result, `write_measurement`), item scores
  ``states_pre/`` and ``states_post[_k<k>]/``;
- ``train.py method=prompting``: the evaluate layout once per probe, under ``<probe>/``.

`cell_results` and `cell_states` read any of them back (results written by older versions
included: missing fields come back None), for the sweep report, the arms and the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vat.io import CURVE_FILE, atomic_write, read_curve
from vat.metrics.fields import TRAJECTORY, flat_row

#: Statuses whose cells have results to read (``unknown``: a cell dir the manifest lacks).
FINISHED = ("done", "unknown")


def write_final(report_dir: Path, probe: str, step: int, result_dict: dict[str, Any]) -> Path:
    """``report_<probe>/vat.json``: a training run's full result at its last point."""
    path = Path(report_dir) / "vat.json"
    body = json.dumps({"step": step, "probe": probe, **result_dict}, indent=2, allow_nan=False)
    atomic_write(path, body)
    return path


def write_measurement(out: Path, payload: dict[str, Any]) -> Path:
    """``vat.json`` of a measurement (evaluate.py, method=prompting): every strength's result."""
    path = Path(out) / "vat.json"
    atomic_write(path, json.dumps(payload, indent=2, allow_nan=False))
    return path


def trajectory(axis: str, points: list[dict]) -> list[dict]:
    """Trajectory rows (`TRAJ_KEYS`) of curve rows (``axis="step"``) or per-strength results
    (``axis="k"``), each at its ``x``: the step or the strength."""
    x_key = {"step": "step", "k": "strength"}[axis]
    return [{"axis": axis, "x": p.get(x_key),
             **flat_row(p, TRAJECTORY)} for p in points]  # fmt: skip


def cell_results(cell_dir: Path) -> list[dict]:
    """Per probe: ``{"probe", "final": full result dict, "point", "trajectory": [rows]}``."""
    out = []
    curve = cell_dir / CURVE_FILE
    rows = read_curve(curve)[0] if curve.is_file() else []  # a killed cell's torn row: dropped
    for f in sorted(cell_dir.glob("report_*/vat.json")):  # sft / dpo: last checkpoint + curve
        res = json.loads(f.read_text(encoding="utf-8"))
        probe = res.get("probe", f.parent.name.removeprefix("report_"))
        traj = trajectory("step", [r for r in rows if r["probe"] == probe])
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
        last = results[-1]
        point = "checkpoint" if last.get("strength") is None else f"k={last['strength']}"
        out.append({"probe": payload.get("probe", f.parent.name), "final": last, "point": point,
                    "trajectory": trajectory("k", results)})  # fmt: skip
    return out


def _strength(p: Path) -> int:
    tail = p.name.rsplit("_k", 1)
    return int(tail[1]) if len(tail) == 2 and tail[1].isdigit() else -1


def cell_states(cell_dir: Path, cross: bool = False) -> dict[str, tuple[Path, Path]]:
    """probe -> (pre state dir, last post state dir) of one cell; probes without both are left out.

    ``cross=True``: instead the other taxonomies' items measured beside the run, keyed
    ``<probe>@<taxonomy>`` (``measure=[...]``; training runs only)."""
    out = {}
    for pre in sorted(cell_dir.glob("states_pre_*")):
        probe = pre.name.removeprefix("states_pre_")
        if ("@" in probe) != cross:  # <probe>@<taxonomy>: another taxonomy's items (measure=[...])
            continue
        posts = sorted((cell_dir / "states").glob(f"step*_{probe}"))
        if posts:
            out[probe] = (pre, posts[-1])
    for pre in [] if cross else [*sorted(cell_dir.glob("*/states_pre")), cell_dir / "states_pre"]:
        posts = sorted(pre.parent.glob("states_post*"), key=_strength)
        if pre.is_dir() and posts:
            probe = json.loads((pre / "meta.json").read_text()).get("probe", pre.parent.name)
            out.setdefault(probe, (pre, posts[-1]))
    return out


def cell_config(cell_dir: Path) -> DictConfig | None:
    """The config a cell ran with (its ``config.yaml``); None before it started."""
    f = cell_dir / "config.yaml"
    return OmegaConf.load(f) if f.is_file() else None


def cell_meta(cell_dir: Path, overrides: list[str]) -> dict[str, str]:
    """Model, target value and method (or intervention) of a cell, from its saved config."""
    meta = {"model": "?", "value": "?", "method": "?"}
    cfg = cell_config(cell_dir)
    if cfg is not None:
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
