"""`vat.losses.tokens`: sequence log-probs from logits and labels, and the input checks, against
numbers worked out by hand (`tests/losses/helpers.py`)."""

from __future__ import annotations

import pytest
import torch

from tests.losses.helpers import LABELS, LN2, LN6, close, hand_logits
from vat import losses as L


def test_sequence_logps_sum_by_hand():
    logps, n = L.sequence_logps(hand_logits(), LABELS)
    assert logps.shape == (2,) and n.shape == (2,)
    assert n.tolist() == [2, 1]
    assert close(logps[0], -LN6, 1e-5)
    assert close(logps[1], -LN2, 1e-5)


def test_sequence_logps_mean_by_hand():
    logps, n = L.sequence_logps(hand_logits(), LABELS, average=True)
    assert n.tolist() == [2, 1]
    assert close(logps[0], -LN6 / 2, 1e-5)  # -0.8958797346140275
    assert close(logps[1], -LN2, 1e-5)


def test_sequence_logps_custom_ignore_index_and_empty_sequence():
    labels = LABELS.clone()
    labels[labels == -100] = 7  # a pad id outside the vocabulary
    logps, n = L.sequence_logps(hand_logits(), labels, ignore_index=7)
    assert n.tolist() == [2, 1] and close(logps[0], -LN6, 1e-5)
    # A sequence with nothing to predict: empty sum 0, mean 0, never NaN.
    empty = torch.full((1, 4), -100)
    for average in (False, True):
        lp, k = L.sequence_logps(hand_logits()[:1], empty, average=average)
        assert k.tolist() == [0] and lp.tolist() == [0.0]


def test_sequence_logps_matches_log_softmax_and_keeps_float32():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, 11, generator=g)
    labels = torch.randint(0, 11, (3, 6), generator=g)
    labels[0, :3] = -100
    labels[2, 4:] = -100
    ref = torch.log_softmax(logits[:, :-1], -1).gather(-1, labels[:, 1:].clamp(min=0)[..., None])
    ref = (ref.squeeze(-1) * (labels[:, 1:] != -100)).sum(-1)
    logps, _ = L.sequence_logps(logits, labels)
    assert torch.allclose(logps, ref, atol=1e-5)
    # Low-precision logits come back as float32 log-probs.
    lp16, _ = L.sequence_logps(logits.bfloat16(), labels)
    assert lp16.dtype == torch.float32
    assert torch.allclose(lp16, ref, atol=0.1)


def test_sequence_logps_gradient_reaches_only_used_positions():
    logits = hand_logits().requires_grad_()
    logps, _ = L.sequence_logps(logits, LABELS)
    logps.sum().backward()
    assert logits.grad is not None
    # Masked or unused positions get no gradient.
    for b, pos in [(0, 0), (0, 3), (1, 1), (1, 2), (1, 3)]:
        assert torch.all(logits.grad[b, pos] == 0)
    # d log softmax(x)[y] / dx = onehot(y) - softmax(x): at [1, 0] = [1, 0, 0] - [0.5, .25, .25].
    assert torch.allclose(logits.grad[1, 0], torch.tensor([0.5, -0.25, -0.25]), atol=1e-6)


def test_lm_input_errors():
    logits = hand_logits()
    with pytest.raises(ValueError, match="must agree"):
        L.sequence_logps(logits, LABELS[:, :3])
    with pytest.raises(ValueError, match=r"\(B, T, V\)"):
        L.sft_loss(logits[0], LABELS)
    with pytest.raises(ValueError, match="integer"):
        L.sequence_logps(logits, LABELS.float())
