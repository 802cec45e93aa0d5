"""Library messages that do not concern the user's run, switched off where each is raised.

Only these, each matched on its own text; every other warning (about the user's config, data,
model or cluster) stays:

- Lightning's "The `srun` command is available on your system but is not used" on a machine that
  merely has SLURM installed (outside a SLURM job: inside one, the hint is about the run, kept);
- Lightning's "Checkpoint directory ... exists and is not empty" when the directory holds only the
  resolved ``config.yaml`` that `vat.run.setup` wrote there for this very run;
- Lightning's tip to install litlogger (an advertisement, logged at INFO on every fit);
- W&B's "The anonymous setting has no effect": Lightning's `WandbLogger` always passes
  ``anonymous=None``, which W&B warns about; dropping the key changes nothing else;
- library deprecations raised by the libraries' own calls, not the user's code: Lightning's
  ``LeafSpec`` notice and transformers' ``is_gradient_checkpointing`` one; and Lightning's
  "validation_step but no val_dataloader" (vat's modules define the step for users who add one).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterable
from pathlib import Path

_SRUN = r"The `srun` command is available on your system but is not used"
_LIBRARY_INTERNAL = (
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    r"`is_gradient_checkpointing` is deprecated",
    r"You defined a `validation_step` but have no `val_dataloader`",
)


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg)


def quiet_library_noise(checkpoint_dir: Path | None = None) -> None:
    """Install the filters above (idempotent); ``checkpoint_dir``: this run's, if fresh."""
    if "SLURM_JOB_ID" not in os.environ:
        warnings.filterwarnings("ignore", message=_SRUN)
    for msg in _LIBRARY_INTERNAL:
        warnings.filterwarnings("ignore", message=msg)
    if checkpoint_dir is not None:
        d = Path(checkpoint_dir)
        if not d.is_dir() or {p.name for p in d.iterdir()} <= {"config.yaml"}:
            msg = f"Checkpoint directory {re.escape(str(d))} exists and is not empty"
            warnings.filterwarnings("ignore", message=msg)
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in log.filters):
        log.addFilter(_DropLitLoggerTip())


def drop_wandb_anonymous(loggers: Iterable) -> None:
    """Take the ``anonymous`` key (always None) out of each `WandbLogger`'s init arguments."""
    for lg in loggers:
        init = getattr(lg, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous") is None:
            init.pop("anonymous", None)
