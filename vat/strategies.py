"""Training strategies: Lightning's, with one fix for DeepSpeed (conf/strategy/ selects them)."""

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
