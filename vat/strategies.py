"""Training strategies: Lightning's, with two changes for DeepSpeed (conf/strategy/ selects them)."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import strategies


class DeepSpeedStrategy(strategies.DeepSpeedStrategy):
    """Lightning's `DeepSpeedStrategy`, with gradient accumulation scaled once.

    Lightning divides every micro-batch loss by ``accumulate_grad_batches`` and then calls the
    DeepSpeed engine's ``backward``, which divides it again by ``gradient_accumulation_steps``
    (Lightning 2.6, DeepSpeed 0.19): with accumulation k the gradients came out k times too small
    (one SGD step with k=2 moved the weights exactly half as far as DDP). Here DeepSpeed does not
    scale; the accumulation itself is still DeepSpeed's, with k from ``accumulate_grad_batches``.
    """

    def backward(self, closure_loss, optimizer, *args: Any, **kwargs: Any):
        return super().backward(closure_loss, optimizer, *args, scale_wrt_gas=False, **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any = None) -> None:
        """DeepSpeed's checkpoint directory, written under a partial name and swapped in whole.

        Every rank writes its shard into ``.<name>.partial``; after a barrier rank zero moves the
        previous checkpoint aside, renames the new one into place and deletes the old one. A
        crash at any point leaves a loadable checkpoint: `vat.checkpoint.recover_checkpoints`
        (run before a resume) removes a partial write or puts back a checkpoint set aside.
        """
        import os
        import shutil
        from pathlib import Path

        from vat.checkpoint import aside_path, partial_path, write_error

        final = Path(self.broadcast(str(filepath)))
        tmp, aside = partial_path(final), aside_path(final)
        if self.is_global_zero and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)  # an earlier write that died
        self.barrier("vat_checkpoint_start")
        try:
            super().save_checkpoint(checkpoint, tmp, storage_options)
        except OSError as e:
            raise write_error(final, e) from e
        self.barrier("vat_checkpoint_written")
        if self.is_global_zero:
            if final.exists():
                os.replace(final, aside)
            os.replace(tmp, final)
            shutil.rmtree(aside, ignore_errors=True)
        self.barrier("vat_checkpoint_swapped")
