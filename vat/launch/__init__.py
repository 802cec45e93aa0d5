"""Launching `train.py` on many GPUs and nodes: guards, the SLURM walltime guard, sbatch scripts.

- `vat.launch.checks`: `check_launch` (first thing in ``train``) and `LaunchCheck` (the Hydra
  callback of the submitit presets) refuse a setup that would hang, split output dirs or re-run a
  sweep in every rank;
- `vat.launch.devices`: `trainer.devices` read once, as Lightning reads it (`parse_devices`);
- `vat.launch.slurm`: who started the ranks (``srun``, ``torchrun``), Lightning's
  ``SLURMEnvironment`` from config (`slurm_environment`) and the walltime guard outside ``fit``
  (`walltime_signal_guard`);
- `vat.launch.sbatch`: sbatch scripts (`render_sbatch`); `vat.launch.smoke`: the GPU smoke table;
  `vat.launch.cli`: ``python -m vat.launch sbatch --nodes 2 --gpus-per-node 8 --time 24:00:00 --
  value=... method=dpo`` (the examples in ``launch/`` are rendered this way) and
  ``python -m vat.launch smoke-report <run dir>...`` (`launch/gpu_smoke.sh`).

The config names these by their short paths (``_target_: vat.launch.LaunchCheck``,
``vat.launch.slurm_environment``), hence the names below. Nothing here imports torch or Lightning
at import time (the Hydra callback runs in the process that submits a sweep, and rendering a
script should be instant).
"""

from vat.launch.checks import (
    LaunchCheck,
    LaunchError,
    check_launch,
    check_launcher_matches_trainer,
    strategy_reruns_command,
)
from vat.launch.cli import main
from vat.launch.devices import device_count, parse_devices
from vat.launch.sbatch import SbatchJob, render_sbatch, train_args
from vat.launch.slurm import (
    slurm_environment,
    slurm_plugin_override,
    slurm_srun_env,
    torchelastic_env,
    walltime_signal_guard,
)
from vat.launch.smoke import smoke_metrics, smoke_table

__all__ = [
    "LaunchCheck",
    "LaunchError",
    "SbatchJob",
    "check_launch",
    "check_launcher_matches_trainer",
    "device_count",
    "main",
    "parse_devices",
    "render_sbatch",
    "slurm_environment",
    "slurm_plugin_override",
    "slurm_srun_env",
    "smoke_metrics",
    "smoke_table",
    "strategy_reruns_command",
    "torchelastic_env",
    "train_args",
    "walltime_signal_guard",
]
