"""Training strategies: Lightning's, with changes for DeepSpeed (conf/strategy/ selects them)."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from lightning.pytorch import strategies

from vat.checkpoint import aside_path, write_error
from vat.io import partial_path

# torch (2.13) deprecates the collectives that DeepSpeed (0.19) calls on every ZeRO step; a ZeRO-3
# run on CPU logged ~3 of these per step per rank (3,341 lines for 400 steps on 2 ranks). Nothing a
# user of vat can act on: these exact messages are filtered, every other warning is kept.
DEPRECATED_COLLECTIVES = (
    r"`torch\.distributed\.(all_gather_into_tensor|reduce_scatter_tensor)` is deprecated",
    r"`torch\.distributed\.(_all_gather_base|_reduce_scatter_base)` is a private function",
)


def ignore_deprecated_collectives() -> None:
    """Filter torch's deprecation warnings of the collectives in `DEPRECATED_COLLECTIVES`."""
    for message in DEPRECATED_COLLECTIVES:
        warnings.filterwarnings("ignore", message=message, category=FutureWarning)


class DeepSpeedStrategy(strategies.DeepSpeedStrategy):
    """Lightning's `DeepSpeedStrategy`, with gradient accumulation scaled once and torch's
    deprecation warnings of DeepSpeed's collectives filtered (`ignore_deprecated_collectives`).

    Lightning divides every micro-batch loss by ``accumulate_grad_batches`` and then calls the
    DeepSpeed engine's ``backward``, which divides it again by ``gradient_accumulation_steps``
    (Lightning 2.6, DeepSpeed 0.19): with accumulation k the gradients came out k times too small
    (one SGD step with k=2 moved the weights exactly half as far as DDP). Here DeepSpeed does not
    scale; the accumulation itself is still DeepSpeed's, with k from ``accumulate_grad_batches``.
    """

    def __init__(self, *args: Any, z3_leaf_modules: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ignore_deprecated_collectives()  # DeepSpeed's calls, not ours: see DEPRECATED_COLLECTIVES
        self.z3_leaf_modules = list(z3_leaf_modules or [])

    def init_deepspeed(self) -> None:
        """ZeRO-3: mark `z3_leaf_modules` (class names, e.g. peft's LoRA ``Linear``) as leaves first.

        ZeRO-3 puts a fetch/release hook pair on every submodule; a LoRA layer is five of them
        (base layer, lora_A, lora_B, dropout, the wrapper). A leaf gathers all its parameters at
        its own pre-forward hook instead (`deepspeed.utils.set_z3_leaf_modules`), before the engine
        installs the hooks. Measured in benchmarks/bench_zero3.py (RESULTS.md "zero3"): with peft
        LoRA (LoRA ``Linear`` or whole decoder layers as leaves) DeepSpeed 0.19.8 fails in the
        backward pass (a released weight of size 0), so no preset sets it; it is there for models
        without adapters (e.g. MoE experts, DeepSpeed's own use case).
        """
        if self.zero_stage_3 and self.z3_leaf_modules:
            from deepspeed.utils import set_z3_leaf_modules
            from hydra.utils import get_class

            # a dotted path names one class; a bare name matches every class of that name
            classes = [get_class(c) if "." in c else c for c in self.z3_leaf_modules]
            set_z3_leaf_modules(self.model, classes)
        super().init_deepspeed()

    def backward(self, closure_loss, optimizer, *args: Any, **kwargs: Any):
        return super().backward(closure_loss, optimizer, *args, scale_wrt_gas=False, **kwargs)

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options: Any = None) -> None:
        """DeepSpeed's checkpoint directory, written under a partial name and swapped in whole.

        Every rank writes its shard into ``.<name>.partial``; after a barrier rank zero moves the
        previous checkpoint aside, renames the new one into place and deletes the old one. A
        crash at any point leaves a loadable checkpoint: `vat.checkpoint.recover_checkpoints`
        (run before a resume) removes a partial write or puts back a checkpoint set aside.

        Not `vat.io.atomic_file`: that swaps in one file that one process wrote; this is a
        directory that every rank writes between barriers, and a directory cannot be renamed over
        another, hence the set-aside copy (which recovery knows to put back).
        """
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
