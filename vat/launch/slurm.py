"""Who started this process (SLURM's ``srun``, ``torchrun``) and the SLURM walltime guard.

Walltime guard: a job that SLURM signals (``#SBATCH --signal=SIGUSR1@120``) 120 s before its time
limit saves ``hpc_ckpt_<n>.ckpt`` in ``trainer.default_root_dir`` (the run dir) after the current
step and requeues itself with ``scontrol requeue`` (`vat.launch.requeue.WalltimeRequeue`, under
Lightning's ``SLURMEnvironment(auto_requeue=True)``); the requeued job keeps its job id, so its run
dir is the same and Lightning resumes from that checkpoint. Outside ``Trainer.fit``
`walltime_signal_guard` handles the signal instead.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

REQUEUE_SIGNAL = "SIGUSR1"  # the signal the sbatch scripts ask for and Lightning handles
_INTERACTIVE_SLURM_JOB_NAMES = ("bash", "interactive")  # Lightning ignores SLURM for these


def slurm_srun_env(env: Mapping[str, str] | None = None) -> bool:
    """True when SLURM started this process as one task of a job step (as Lightning decides)."""
    env = os.environ if env is None else env
    return "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in _INTERACTIVE_SLURM_JOB_NAMES


def torchelastic_env(env: Mapping[str, str] | None = None) -> bool:
    """True when `torchrun` (torch.distributed.run) started this process."""
    env = os.environ if env is None else env
    return "TORCHELASTIC_RUN_ID" in env


def _signal(sig: str | int) -> signal.Signals:
    """A signal from its name, with or without ``SIG`` (``"SIGUSR1"``, ``"usr1"``), or number."""
    if isinstance(sig, str):
        name = sig.upper()
        return signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    return signal.Signals(sig)


def slurm_environment(auto_requeue: bool = True, requeue_signal: str | int = REQUEUE_SIGNAL):
    """Lightning's ``SLURMEnvironment`` from config (``trainer.plugins``): on ``requeue_signal``
    every rank saves ``hpc_ckpt_<n>.ckpt`` into the run dir after the current step and rank 0 runs
    ``scontrol requeue`` (`vat.launch.requeue.WalltimeRequeue` reads both settings).

    Only valid in a process that ``srun`` started. Lightning picks the same environment with the
    same defaults by itself under ``srun``; the sbatch scripts name it so that the signal in the
    ``#SBATCH --signal`` line and the handled signal are written in one place.
    """
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=_signal(requeue_signal))


def slurm_plugin_override(requeue_signal: str = REQUEUE_SIGNAL) -> str:
    """The Hydra override that sets `slurm_environment` as the trainer's cluster plugin."""
    plugin = f"{{_target_:vat.launch.slurm_environment,requeue_signal:{requeue_signal}}}"
    return f"++trainer.plugins=[{plugin}]"


def walltime_signal_guard(phase: str, requeue_signal: str | int = REQUEUE_SIGNAL,
                          env: Mapping[str, str] | None = None) -> bool:  # fmt: skip
    """Handle SLURM's walltime signal outside ``Trainer.fit``, where Lightning's handler is not
    installed and the signal's default action would kill the job.

    ``phase="before"`` (data, reference log-probs, pre scoring): nothing to checkpoint yet, so rank
    0 requeues the job at once (``scontrol requeue``, as Lightning does) and the requeued job starts
    over. ``phase="after"`` (export, final report): training is finished, the signal is logged and
    ignored, so the job completes instead of failing with "User defined signal 1" (seen on the local
    SLURM cluster when the signal came after the last step). ``phase="fit"`` puts the default back
    just before ``Trainer.fit``: inside ``fit`` `vat.launch.requeue.WalltimeRequeue` (a callback
    `vat.trainer.build_trainer` adds) installs its checkpoint-and-requeue handler in its ``setup``
    hook. A signal between that point and ``setup`` (the process group's set-up inside ``fit``)
    still ends the job. A no-op outside an srun task; True when something was installed.
    """
    import logging
    import subprocess

    env = os.environ if env is None else env
    if not slurm_srun_env(env):
        return False
    if phase not in ("before", "fit", "after"):
        raise ValueError(f"phase must be 'before', 'fit' or 'after', got {phase!r}")
    sig = _signal(requeue_signal)
    if phase == "fit":
        signal.signal(sig, signal.SIG_DFL)
        return True
    log = logging.getLogger(__name__)
    job = env.get("SLURM_JOB_ID", "")
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"

    def before(signum, frame):
        log.warning("SLURM walltime signal before training started: nothing to checkpoint yet; "
                    "requeueing job %s", job)  # fmt: skip
        if env.get("SLURM_PROCID", "0") == "0":
            subprocess.call(["scontrol", "requeue", job])

    def after(signum, frame):
        log.warning("SLURM walltime signal after training finished: ignored while the model is "
                    "exported and the report written")  # fmt: skip

    signal.signal(sig, before if phase == "before" else after)
    return True
