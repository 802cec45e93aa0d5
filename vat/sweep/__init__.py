"""Sweeps (``python train.py -m ...``): one run dir per cell, a manifest, skip and resume.

Each cell of a Hydra multirun runs in ``<sweep dir>/<its overrides>`` (``hydra.sweep.subdir``, e.g.
``method=dpo,value=security``; `vat.sweep.names`). The sweep dir is named by ``sweep.name``, not by
the clock, so running the same command again finds the same cells (`vat.sweep.cell.run_cell`):

- a cell whose ``status.json`` says ``done`` is skipped (its config must be unchanged);
- an unfinished cell (killed, failed, timed out) resumes from its ``checkpoints/last.ckpt``;
- a cell whose directory holds a run with a *different* config fails with the differing keys,
  rather than mixing two experiments in one directory.

``manifest.json`` in the sweep dir lists every cell with its overrides and status (pending,
running, done, failed + the error, interrupted by SIGTERM; `vat.sweep.manifest`). It is written
under a file lock, so cells running as separate SLURM jobs (submitit launcher) can update it at
once. A failing cell is recorded and does not stop the others; after the last cell,
`SweepCallback` (`vat.sweep.callback`) writes the sweep report (`vat.report.sweep`) and then exits
non-zero if any cell failed.
"""

from vat.sweep.callback import SweepCallback
from vat.sweep.cell import CellFailedError, check_same_experiment, config_diff, run_cell
from vat.sweep.manifest import MANIFEST, STATUS, read_json, read_manifest, update_manifest
from vat.sweep.names import cell_dir_name, cell_name, planned_cells, register_resolvers

__all__ = [
    "MANIFEST",
    "STATUS",
    "CellFailedError",
    "SweepCallback",
    "cell_dir_name",
    "cell_name",
    "check_same_experiment",
    "config_diff",
    "planned_cells",
    "read_json",
    "read_manifest",
    "register_resolvers",
    "run_cell",
    "update_manifest",
]
