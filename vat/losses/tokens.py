"""Token log-probs of labelled sequences: the label convention and the causal shift.

``labels`` are aligned with ``input_ids`` (Hugging Face convention: ``labels = input_ids`` with the
prompt and the padding set to `IGNORE_INDEX`), and ``logits[:, t]`` predicts ``labels[:, t + 1]``.
The SFT loss (`vat.losses.sft`) and the preference losses' inputs (`sequence_logps`) both read them
this way.
"""

from __future__ import annotations

import torch

# The label value that PyTorch's cross entropy and Hugging Face collators use for "no target"; the
# training collators (`vat.data.collate`) write it on the prompt and on padding.
IGNORE_INDEX = -100


def check_lm_inputs(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """``logits`` must be float ``(B, T, V)`` and ``labels`` integer ``(B, T)``."""
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (B, T, V), got shape {tuple(logits.shape)}")
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (B, T), got shape {tuple(labels.shape)}")
    if logits.shape[:2] != labels.shape:
        raise ValueError(
            f"logits (B, T, V) = {tuple(logits.shape)} and labels (B, T) = {tuple(labels.shape)} "
            "must agree on B and T"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating point tensor, got dtype {logits.dtype}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got dtype {labels.dtype}")


def sequence_logps(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    ignore_index: int = IGNORE_INDEX,
    average: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each labelled sequence under ``logits``: ``log p(y | x)``.

    Shapes: ``logits`` ``(B, T, V)`` from a causal LM run on ``input_ids`` ``(B, T)``; ``labels``
    ``(B, T)`` aligned with ``input_ids`` (Hugging Face convention: ``labels = input_ids`` with the
    prompt and the padding set to ``ignore_index``). The causal shift is done here: ``logits[:, t]``
    predicts ``labels[:, t + 1]``, so ``logits[:, -1]`` and ``labels[:, 0]`` are never used.

    With ``m_t = [labels[:, t+1] != ignore_index]`` and ``y_t = labels[:, t+1]``::

        token_logp_t = logits[:, t, y_t] - logsumexp_v logits[:, t, v]     (= log_softmax, gathered)
        n_tokens     = sum_t m_t                                           (B,)
        logps        = sum_t m_t * token_logp_t                            (B,)   average=False
        logps        = sum_t m_t * token_logp_t / max(n_tokens, 1)         (B,)   average=True

    A sequence without a single labelled token gets ``logps = 0`` (the empty sum), never NaN.

    Memory: a full ``log_softmax(logits.float())`` materialises a second ``B x T x V`` float32
    tensor (1 GB for 1k tokens x 256k vocab, per sequence) and keeps it for backward. Instead the
    target logit is gathered first (``B x T`` values) and the ``logsumexp`` normaliser is computed
    in float32 one sequence at a time (the TRL ``selective_log_softmax`` trick), so the forward
    transient is one ``T x V`` float32 slice. With float32 logits nothing of size ``V`` is added
    for backward either (``logsumexp`` saves its input, which already exists); with bf16/fp16
    logits autograd does keep each row's float32 upcast, as any float32 softmax would. Under
    ``torch.no_grad()`` (the reference model) no copy is kept at all. The result equals
    ``log_softmax`` + ``gather``.

    Returns ``(logps, n_tokens)``: ``logps`` float32 ``(B,)``, ``n_tokens`` int64 ``(B,)``.
    """
    check_lm_inputs(logits, labels)
    logits = logits[:, :-1, :]  # (B, T-1, V): position t predicts token t+1
    targets = labels[:, 1:]  # (B, T-1)
    mask = targets != ignore_index
    # Masked positions get a valid dummy index for gather; their value is zeroed by the mask below.
    safe_targets = torch.where(mask, targets, torch.zeros_like(targets))

    target_logits = torch.gather(logits, dim=-1, index=safe_targets.unsqueeze(-1)).squeeze(-1)
    # Normaliser row by row: bounds the float32 upcast to one (T-1, V) slice at a time.
    log_normalisers = torch.stack([torch.logsumexp(row.float(), dim=-1) for row in logits])
    token_logps = target_logits.float() - log_normalisers  # (B, T-1)

    token_logps = token_logps.masked_fill(~mask, 0.0)
    n_tokens = mask.sum(dim=-1)  # (B,) int64
    logps = token_logps.sum(dim=-1)
    if average:
        logps = logps / n_tokens.clamp(min=1).to(logps.dtype)
    return logps, n_tokens
