"""The Hydra callback of a sweep (``hydra.callbacks.sweep``): the manifest at its start, the report
and the exit status at its end."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig

from vat.sweep.manifest import MANIFEST, read_manifest, update_manifest
from vat.sweep.names import planned_cells, sweep_group

log = logging.getLogger(__name__)


class SweepCallback(Callback):
    """Lists a sweep's cells in its manifest at the start; at the end writes the sweep report and
    exits non-zero if any cell failed.

    ``report`` is the dotted path of the function that builds the report from the sweep dir
    (``vat.report.sweep.build_sweep_report``, set in ``conf/hydra/default.yaml``), or None for no
    report. It is named in the config, not imported here: the report reads the manifest this
    package writes, so `vat.report` imports `vat.sweep`, and `vat.sweep` never imports it back.
    """

    def __init__(self, report: str | None, fail_on_error: bool = True):
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
            try:
                path = get_method(self.report)(sweep_dir, wandb_cfg=_wandb_cfg(config))
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
