"""Sweeps (``python train.py -m ...``): one run dir per cell, a manifest, skip and resume.

Each cell of a Hydra multirun runs in ``<sweep dir>/<its overrides>`` (``hydra.sweep.subdir``, e.g.
``method=dpo,value=security``). The sweep dir is named by ``sweep.name``, not by the clock, so
running the same command again finds the same cells:

- a cell whose ``status.json`` says ``done`` is skipped (its config must be unchanged);
- an unfinished cell (killed, failed, timed out) resumes from its ``checkpoints/last.ckpt``;
- a cell whose directory holds a run with a *different* config fails with the differing keys,
  rather than mixing two experiments in one directory.

``manifest.json`` in the sweep dir lists every cell with its overrides and status (pending,
running, done, failed + the error, interrupted by SIGTERM). It is written under a file lock, so
cells running as separate SLURM jobs (submitit launcher) can update it at once. A failing cell is
recorded and does not stop the others; after the last cell, `SweepCallback` writes the sweep report
(`vat.report.sweep.build_sweep_report`) and then exits non-zero if any cell failed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATUS = "status.json"
# Keys that may differ between two runs of the same cell (machine paths, the resume switch).
VOLATILE_KEYS = ("paths", "ckpt_path")
MAX_NAME = 160  # a cell dir's name stays well under the 255-byte file name limit


def cell_name(override_dirname: str | None) -> str:
    """A cell's dir name: its overrides (``method=dpo,value=security``), hashed when too long."""
    name = override_dirname or "default"
    if len(name.encode()) <= MAX_NAME:
        return name
    import hashlib

    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name.encode()[: MAX_NAME - 11].decode(errors='ignore')}-{digest}"


class CellFailedError(RuntimeError):
    """A sweep cell could not run as asked (e.g. its directory holds a different experiment)."""


# ---------------------------------------------------------------------------- files
def _write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: a crash leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_manifest(sweep_dir: str | Path) -> dict:
    """``{"cells": {name: {...}}}``; an empty manifest when the sweep has none yet."""
    return read_json(Path(sweep_dir) / MANIFEST) or {"cells": {}}


def update_manifest(sweep_dir: str | Path, cell: str, /, **fields: Any) -> dict:
    """Merge ``fields`` into the manifest entry of ``cell`` (created if missing), under a lock."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(sweep_dir / f".{MANIFEST}.lock")):
        manifest = read_manifest(sweep_dir)
        entry = manifest["cells"].setdefault(cell, {"status": "pending"})
        entry.update(fields)
        manifest["updated"] = _now()
        _write_json(sweep_dir / MANIFEST, manifest)
    return entry


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


# ---------------------------------------------------------------------------- planning
def planned_cells(config: DictConfig) -> list[dict]:
    """Every cell the basic sweeper will run, as ``{"name", "overrides"}``, from the multirun config.

    Mirrors `BasicSweeper.sweep`: ``hydra.sweeper.params`` first, then the command line overrides,
    expanded into their cartesian product; names follow ``hydra.job.override_dirname``.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = config.hydra
    params = hydra_cfg.sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    args += list(OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))
    parser = OverridesParser.create()
    batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
    return [{"name": cell_dir_name(list(o), hydra_cfg), "overrides": list(o)}
            for o in (batches[0] if batches else [])]  # fmt: skip


def cell_dir_name(overrides: list[str], hydra_cfg: DictConfig) -> str:
    """The dir name (``hydra.sweep.subdir``) of the cell with these job overrides."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    od = hydra_cfg.job.config.override_dirname
    name = get_overrides_dirname(
        overrides=OverridesParser.create().parse_overrides(overrides),
        exclude_keys=list(od.exclude_keys), item_sep=od.item_sep, kv_sep=od.kv_sep,
    )  # fmt: skip
    return cell_name(name)


# ---------------------------------------------------------------------------- config check
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def _comparable(cfg: dict) -> dict[str, Any]:
    """Flat leaves without volatile keys; paths under the run/root/cache dirs made relative."""
    paths = cfg.get("paths") or {}
    roots = sorted(((str(v), f"<{k}>") for k, v in paths.items() if isinstance(v, str) and v),
                   key=lambda r: -len(r[0]))  # fmt: skip

    def rel(v: Any) -> Any:
        if isinstance(v, str):
            for root, tag in roots:
                if v.startswith(root):
                    return tag + v[len(root) :]
        return v

    return {k: rel(v) for k, v in _flatten(cfg).items() if k.split(".")[0] not in VOLATILE_KEYS}


def config_diff(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for every leaf that differs, volatile keys (paths, ckpt_path) aside.

    Keys present in both configs come first (they are the telling ones), then added/removed keys.
    """
    a, b = _comparable(old), _comparable(new)
    changed = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    only = [f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
            for k in sorted(set(a) ^ set(b))]  # fmt: skip
    return changed + only


def last_checkpoint(cell_dir: Path) -> Path | None:
    from vat.checkpoint import recover_checkpoints

    if _is_rank_zero():
        recover_checkpoints(cell_dir / "checkpoints")  # a write cut short: undone, never loaded
    p = cell_dir / "checkpoints" / "last.ckpt"
    return p if p.exists() else None  # a file, or a directory under DeepSpeed


# ---------------------------------------------------------------------------- running a cell
def run_cell(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``task(cfg)`` as a sweep cell: skip if done, resume if started, record the outcome.

    Outside a multirun this is just ``task(cfg)``. Inside one, an exception is logged with its
    traceback and recorded as the cell's status instead of stopping the sweep; `SweepCallback`
    turns failed cells into a non-zero exit after the sweep report is written.
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return task(cfg)
    hc = HydraConfig.get()
    cell_dir = Path(hc.runtime.output_dir)
    sweep_dir = Path(hc.sweep.dir)
    name = cell_dir.name
    rank0 = _is_rank_zero()
    overrides = list(hc.overrides.task)
    status = read_json(cell_dir / STATUS) or {}

    def record(**fields: Any) -> None:
        if not rank0:
            return
        entry = {"name": name, "overrides": overrides, "dir": str(cell_dir), **fields}
        _write_json(cell_dir / STATUS, {**status, **entry})
        update_manifest(sweep_dir, name, **entry)

    t0 = time.time()
    try:
        _check_same_experiment(cfg, cell_dir, status)
        if status.get("status") == "done":
            log.info("sweep cell %s is done (%s): skipped", name, cell_dir)
            record(status="done", skipped_at=_now())
            return status.get("summary")
        if cfg.get("ckpt_path") is None and (ckpt := last_checkpoint(cell_dir)) is not None:
            log.info("sweep cell %s resumes from %s", name, ckpt)
            cfg.ckpt_path = str(ckpt)
        attempt = int(status.get("attempt", 0)) + 1
        record(status="running", started=_now(), host=socket.gethostname(), pid=os.getpid(),
               attempt=attempt, resumed_from=cfg.get("ckpt_path"), error=None)  # fmt: skip
        status["attempt"] = attempt
        result = task(cfg)
    except Exception as e:
        log.exception("sweep cell %s failed", name)
        record(status="failed", finished=_now(), seconds=round(time.time() - t0, 1),
               error=f"{type(e).__name__}: {e}",
               traceback="".join(traceback.format_exception(e)[-8:]))  # fmt: skip
        return None
    if isinstance(result, dict) and result.get("interrupted"):
        record(status="interrupted", finished=_now(), seconds=round(time.time() - t0, 1),
               interrupted=_small(result["interrupted"]))  # fmt: skip
        log.warning("sweep stopped by SIGTERM in cell %s; the same command resumes it", name)
        raise SystemExit(0)  # the job is being stopped: no further cells
    record(status="done", finished=_now(), seconds=round(time.time() - t0, 1),
           summary=_small(result))  # fmt: skip
    return result


def _check_same_experiment(cfg: DictConfig, cell_dir: Path, status: dict) -> None:
    """A cell dir that already holds a run must hold *this* experiment (same config)."""
    saved = cell_dir / "config.yaml"
    if not saved.is_file():
        return
    old = OmegaConf.to_container(OmegaConf.load(saved), resolve=False)
    new = OmegaConf.to_container(cfg, resolve=True)
    diff = config_diff(old, new)
    if diff:
        shown = "; ".join(diff[:8]) + (f"; ... ({len(diff)} keys)" if len(diff) > 8 else "")
        raise CellFailedError(
            f"{cell_dir} holds a {status.get('status', 'previous')} run with a different config "
            f"({shown}). Give this sweep its own directory (sweep.name=<new name>) or move "
            "the old run away; nothing was overwritten."
        )


def _small(result: Any) -> Any:
    """What the manifest keeps of a cell's return value: strict JSON (NaN as null, an infinite
    interval end as "inf", `vat.metrics.to_jsonable`), anything else as its string."""
    from vat.metrics import to_jsonable

    try:
        return json.loads(json.dumps(to_jsonable(result), default=str, allow_nan=False))
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------- Hydra callback
class SweepCallback(Callback):
    """Hydra callback (``hydra.callbacks.sweep``): the manifest at the start, the report at the end."""

    def __init__(self, report: bool = True, fail_on_error: bool = True):
        self.report = report
        self.fail_on_error = fail_on_error

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            cells = planned_cells(config)
        except Exception as e:  # a sweeper plugin with its own grammar: cells appear as they run
            log.warning("could not list the sweep's cells in advance (%s)", e)
            return
        known = read_manifest(sweep_dir)["cells"]
        for c in cells:
            if c["name"] not in known:
                update_manifest(sweep_dir, c["name"], overrides=c["overrides"], status="pending",
                                dir=str(sweep_dir / c["name"]))  # fmt: skip
        log.info("sweep %s: %d cells (%d already known to its manifest)", sweep_dir, len(cells),
                 sum(c["name"] in known for c in cells))  # fmt: skip

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if self.report:
            from vat.report.sweep import build_sweep_report

            try:
                path = build_sweep_report(sweep_dir, wandb_cfg=_wandb_cfg(config))
                log.info("sweep report: %s", path)
            except Exception:
                log.exception("the sweep report could not be built; the cells' results are intact")
        cells = read_manifest(sweep_dir)["cells"]
        failed = {n: c.get("error") for n, c in cells.items() if c.get("status") == "failed"}
        if failed and self.fail_on_error:
            lines = "\n".join(f"  {n}: {e}" for n, e in failed.items())
            # SystemExit, not an exception: Hydra turns callback exceptions into warnings, and a
            # sweep with failed cells must exit non-zero (for CI scripts and job arrays).
            raise SystemExit(
                f"{len(failed)} of {len(cells)} sweep cells failed (details in "
                f"{sweep_dir / MANIFEST}; re-run the same command to retry them):\n{lines}"
            )


def _wandb_cfg(config: DictConfig) -> dict | None:
    """The W&B logger settings of the sweep's config, when W&B logging is on."""
    lg = config.get("logger") or {}
    node = lg.get("wandb") if isinstance(lg, DictConfig) else None
    if not node:
        return None
    return {
        "project": node.get("project", "vat"),
        "group": sweep_group(config.sweep.name),
        "save_dir": str(config.hydra.sweep.dir),
    }


def sweep_group(name: str | None) -> str | None:
    """The W&B group of a run: the sweep's name in a multirun, none for a single run."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return f"{hc.job.name}-{name}" if name else hc.job.name


def register_resolvers() -> None:
    """Resolvers the configs use. Registered on import of this module, which every entry point
    (and a submitit job unpickling `run_cell`) imports before Hydra resolves a run dir."""
    # ${vat_sweep_group:<sweep name>}: the W&B group of a sweep's cells (none for a single run)
    OmegaConf.register_new_resolver("vat_sweep_group", sweep_group, replace=True)
    # ${vat_cell_name:${hydra.job.override_dirname}}: a sweep cell's dir name (hashed if long)
    OmegaConf.register_new_resolver("vat_cell_name", cell_name, replace=True)


register_resolvers()
