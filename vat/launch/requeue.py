"""The SLURM walltime guard inside ``Trainer.fit``: checkpoint and requeue at a step boundary.

Lightning's own handler (``SLURMEnvironment(auto_requeue=True)``) saves ``hpc_ckpt_<n>.ckpt`` and
runs ``scontrol requeue`` inside the signal handler, wherever the signal finds the process. With
more than one rank that is inside the step's collectives, at a different point on each rank: on
the local 2-node cluster rank 0 got the signal in the ``barrier`` and rank 1 in the ``all_reduce``
of the same reduction, each then entered the checkpoint's own ``barrier`` and the job hung until
its time limit (py-spy: both in ``Trainer.save_checkpoint`` -> ``barrier`` inside the reduction).
`WalltimeRequeue` only notes the signal; after each optimizer step the ranks agree on whether any
of them got it, and then all save the same ``hpc_ckpt_<n>.ckpt``, rank zero requeues the job and
training stops as on SIGTERM (``summary.json`` says why).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading

import lightning as L
from lightning.fabric.plugins.environments import SLURMEnvironment

log = logging.getLogger(__name__)


class WalltimeRequeue(L.Callback):
    """Checkpoint and requeue on SLURM's walltime signal, between steps on every rank at once.

    Active under a ``SLURMEnvironment`` with ``auto_requeue`` (``vat.launch.slurm_environment``
    in the sbatch scripts, Lightning's default under srun); its handler is installed in
    ``setup``, before Lightning installs its own, which it then leaves out (Lightning adds a
    handler only where none is set). ``saved``: the checkpoint written, once it is.
    """

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self.requested = False  # the signal came, the checkpoint is not saved yet
        self.saved: str | None = None
        self.step: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        env = (
            trainer._accelerator_connector.cluster_environment
        )  # the one Lightning's handler reads
        if stage != "fit" or not isinstance(env, SLURMEnvironment) or not env.auto_requeue:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        self.signal = signal.Signals(env.requeue_signal)
        signal.signal(self.signal, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        self.requested = True
        log.warning("SLURM walltime signal (%s): a checkpoint is saved and the job requeued after "
                    "this step", signal.Signals(signum).name)  # fmt: skip

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.signal is None:
            return
        got = self.requested
        if trainer.world_size > 1:  # every rank, every batch: the same collective on all of them
            got = trainer.strategy.reduce_boolean_decision(got, all=False)
        if not got or trainer.fit_loop.epoch_loop._should_accumulate():
            return  # nothing came, or mid-accumulation: wait for the optimizer step
        if 0 <= trainer.max_steps <= trainer.global_step:  # that was the last step: finish instead
            self.requested = False
            log.warning("SLURM walltime signal at the last step: the run finishes, no requeue")
            return
        path = trainer._checkpoint_connector.hpc_save_path(trainer.default_root_dir)
        for lg in trainer.loggers:
            lg.save()  # the metrics up to here are on disk before the job goes
        trainer.save_checkpoint(path)  # every rank takes part (DeepSpeed writes shards)
        self.requested, self.saved, self.step = False, str(path), trainer.global_step
        if trainer.is_global_zero:
            job = os.environ["SLURM_JOB_ID"]
            if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
                job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
            code = subprocess.call(["scontrol", "requeue", job])
            log.warning("SLURM walltime: saved %s at step %d; scontrol requeue %s -> %s", path,
                        trainer.global_step, job, "requeued" if code == 0 else f"failed ({code})")  # fmt: skip
        trainer._signal_connector.received_sigterm = True  # Lightning stops after this batch
