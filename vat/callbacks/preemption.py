"""`PreemptionCallback`: on SIGTERM (what SLURM and most schedulers send before a kill), save a
checkpoint at the next optimizer-step boundary and stop cleanly, so ``ckpt_path=last`` resumes.

Lightning's own SIGTERM handling stops after the current batch (``SIGTERMException``) without
saving anything. This callback takes the signal over while training runs (Lightning restores the
previous handler at teardown): the handler only records the request; at the end of the next batch
that stepped the optimizer, ``last.ckpt`` is saved from ``on_train_batch_end``, the hook
`ModelCheckpoint` saves in, so the state is exactly a regular checkpoint's. Under gradient
accumulation the save waits for the accumulated micro-batches to step: a checkpoint in the middle
of an accumulation would lose their gradients. Then Lightning is told to stop (it raises
``SIGTERMException`` after the batch); `vat.train.train` catches it, skips the export and final
report, and returns ``{"interrupted": ...}``. All ranks decide together (one all-reduce of a flag
per batch in a distributed job).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L

log = logging.getLogger(__name__)


class PreemptionCallback(L.Callback):
    def __init__(self, filename: str = "last"):
        self.filename = filename
        self.requested = False  # SIGTERM received, checkpoint not yet saved
        self.saved: str | None = None  # the checkpoint written on SIGTERM
        self.step: int | None = None

    def on_train_start(self, trainer, pl_module) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame) -> None:
        self.requested = True
        log.warning("SIGTERM received: a checkpoint will be saved after the current step")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        got = self.requested
        if trainer.world_size > 1:
            got = trainer.strategy.reduce_boolean_decision(got, all=False)
        if not got or trainer.fit_loop.epoch_loop._should_accumulate():
            return  # nothing asked, or mid-accumulation: save once the optimizer has stepped
        path = self.checkpoint_path(trainer)
        trainer.save_checkpoint(path)  # every rank takes part (DeepSpeed writes shards)
        self.requested, self.saved, self.step = False, str(path), trainer.global_step
        if trainer.is_global_zero:
            log.warning("SIGTERM: saved %s at step %d; resume with ckpt_path=last", path,
                        trainer.global_step)  # fmt: skip
        trainer._signal_connector.received_sigterm = True  # Lightning stops after this batch

    def checkpoint_path(self, trainer) -> Path:
        cb = trainer.checkpoint_callback
        d = Path(cb.dirpath) if cb is not None and cb.dirpath else Path(trainer.default_root_dir)
        ext = getattr(cb, "FILE_EXTENSION", ".ckpt")
        return d / f"{self.filename}{ext}"
