"""The SFT loss: token-mean cross entropy of the labelled (response) tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vat.losses.tokens import IGNORE_INDEX, check_lm_inputs


def sft_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Token-mean cross entropy of ``labels`` under ``logits``, prompt and padding masked out.

    Same shapes and causal shift as `vat.losses.sequence_logps`: ``logits`` ``(B, T, V)``,
    ``labels`` ``(B, T)``, and ``logits[:, t]`` predicts ``y_bt = labels[:, t + 1]``. With ``N``
    the number of labelled tokens in the whole batch::

        L = -(1 / N) * sum_{b, t : y_bt != ignore_index} log_softmax(logits[b, t])[y_bt]

    i.e. ``F.cross_entropy`` on the shifted tokens with ``ignore_index``: every labelled token of
    the batch weighs the same (long answers weigh more than short ones, as in standard SFT).

    One difference from ``F.cross_entropy(reduction="mean")``: a batch with no labelled token
    (e.g. every answer truncated away) gives 0 with a zero gradient instead of NaN, so one bad
    batch cannot poison the weights. The logits are upcast to float32 for the softmax.

    Returns a scalar float32 tensor.
    """
    check_lm_inputs(logits, labels)
    vocab = logits.shape[-1]
    shifted_logits = logits[:, :-1, :].reshape(-1, vocab).float()
    targets = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(shifted_logits, targets, ignore_index=ignore_index, reduction="sum")
    n_tokens = (targets != ignore_index).sum()
    return total / n_tokens.clamp(min=1).to(total.dtype)
