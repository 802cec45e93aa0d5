"""``hydra/sweeper=skip_done`` (the default in conf/hydra/default.yaml): Hydra's basic sweeper that
hands the launcher only the cells still to run.

A cell whose ``status.json`` says ``done`` is left out before launching, so re-running a finished
sweep under the submitit launcher submits no SLURM job at all (inside a job,
`vat.sweep.cell.run_cell` would also skip it, but only after the job had queued and started). A done
cell is launched anyway when its config cannot be checked here or differs from the one it ran with:
`run_cell` then refuses it and names the differing keys, exactly as without this sweeper.
"""

# No `from __future__ import annotations`: Hydra's plugin scan executes this module outside
# sys.modules, where a dataclass cannot resolve string annotations.
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

log = logging.getLogger(__name__)


@dataclass
class SkipDoneSweeperConf:
    _target_: str = "hydra_plugins.vat_sweeper.skip_done.SkipDoneSweeper"
    max_batch_size: Any = None
    params: Any = None


ConfigStore.instance().store(group="hydra/sweeper", name="skip_done", node=SkipDoneSweeperConf,
                             provider="vat")  # fmt: skip


class _SkipDoneLauncher:
    """The sweeper's launcher, minus the cells that are done with an unchanged config."""

    def __init__(self, sweeper: "SkipDoneSweeper", inner: Any):
        self.sweeper, self.inner = sweeper, inner

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        todo = [o for o in job_overrides if not self.sweeper.done(list(o))]
        if len(todo) < len(job_overrides):
            log.info("sweep: %d of %d cells are done and are not launched again",
                     len(job_overrides) - len(todo), len(job_overrides))  # fmt: skip
        return self.inner.launch(todo, initial_job_idx=initial_job_idx) if todo else []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class SkipDoneSweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        inner = self.launcher
        self.launcher = _SkipDoneLauncher(self, inner)
        try:
            return super().sweep(arguments)
        finally:
            self.launcher = inner

    def done(self, overrides: list[str]) -> bool:
        """True when the cell of `overrides` is done and its config is the one it ran with."""
        from vat.sweep.cell import CellFailedError, check_same_experiment
        from vat.sweep.manifest import STATUS, read_json
        from vat.sweep.names import cell_dir_name

        assert self.config is not None and self.hydra_context is not None
        cell_dir = Path(self.config.hydra.sweep.dir) / cell_dir_name(overrides, self.config.hydra)
        status = read_json(cell_dir / STATUS) or {}
        if status.get("status") != "done":
            return False
        outer = HydraConfig.instance().cfg
        try:
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(cfg):
                cfg.hydra.runtime.output_dir = str(cell_dir)
                cfg.hydra.job.num = 0
            HydraConfig.instance().set_config(cfg)  # what ${hydra:...} resolves against
            with open_dict(cfg):
                del cfg["hydra"]
            check_same_experiment(cfg, cell_dir, status)
        except CellFailedError:
            return False  # run_cell will refuse it and say why
        except Exception as e:  # cannot tell: let the cell run and check itself
            log.debug("sweep: could not check done cell %s here (%s)", cell_dir.name, e)
            return False
        finally:
            if outer is not None:
                HydraConfig.instance().set_config(outer)
        return True
