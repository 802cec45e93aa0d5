"""Running one sweep cell: skip it if done, resume it if started, record how it ended.

`run_cell` wraps the task (`vat.train.train`, `vat.evaluate.evaluate`) of each cell of a multirun:

- a cell whose ``status.json`` says ``done`` is skipped (its config must be unchanged);
- an unfinished cell (killed, failed, timed out) resumes from its ``checkpoints/last.ckpt``;
- a cell whose directory holds a run with a *different* config fails with the differing keys
  (`config_diff`), rather than mixing two experiments in one directory.

A failing cell is recorded (status, error, traceback) and does not stop the others.
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

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from vat.sweep.manifest import STATUS, now, read_json, update_manifest, write_json

log = logging.getLogger(__name__)

# Keys that may differ between two runs of the same cell (machine paths, the resume switch).
VOLATILE_KEYS = ("paths", "ckpt_path")


class CellFailedError(RuntimeError):
    """A sweep cell could not run as asked (e.g. its directory holds a different experiment)."""


def _is_rank_zero() -> bool:
    from lightning.pytorch.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


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


def check_same_experiment(cfg: DictConfig, cell_dir: Path, status: dict) -> None:
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
        write_json(cell_dir / STATUS, {**status, **entry})
        update_manifest(sweep_dir, name, **entry)

    t0 = time.time()

    def finish(outcome: str, **fields: Any) -> None:
        record(status=outcome, finished=now(), seconds=round(time.time() - t0, 1), **fields)

    try:
        check_same_experiment(cfg, cell_dir, status)
        if status.get("status") == "done":
            log.info("sweep cell %s is done (%s): skipped", name, cell_dir)
            record(status="done", skipped_at=now())
            return status.get("summary")
        if cfg.get("ckpt_path") is None and (ckpt := last_checkpoint(cell_dir)) is not None:
            log.info("sweep cell %s resumes from %s", name, ckpt)
            cfg.ckpt_path = str(ckpt)
        attempt = int(status.get("attempt", 0)) + 1
        record(status="running", started=now(), host=socket.gethostname(), pid=os.getpid(),
               attempt=attempt, resumed_from=cfg.get("ckpt_path"), error=None)  # fmt: skip
        status["attempt"] = attempt
        result = task(cfg)
    except Exception as e:
        log.exception("sweep cell %s failed", name)
        finish("failed", error=f"{type(e).__name__}: {e}",
               traceback="".join(traceback.format_exception(e)[-8:]))  # fmt: skip
        return None
    if isinstance(result, dict) and result.get("interrupted"):
        finish("interrupted", interrupted=_small(result["interrupted"]))
        log.warning("sweep stopped by SIGTERM in cell %s; the same command resumes it", name)
        raise SystemExit(0)  # the job is being stopped: no further cells
    finish("done", summary=_small(result))
    return result


def _small(result: Any) -> Any:
    """What the manifest keeps of a cell's return value: strict JSON (NaN as null, an infinite
    interval end as "inf", `vat.metrics.to_jsonable`), anything else as its string."""
    from vat.metrics import to_jsonable

    try:
        return json.loads(json.dumps(to_jsonable(result), default=str, allow_nan=False))
    except (TypeError, ValueError):
        return None
