"""`vat.losses.sft_loss` against cross entropy and a number worked out by hand
(`tests/losses/helpers.py`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.losses.helpers import LABELS, close, hand_logits
from vat import losses as L


def test_sft_loss_matches_cross_entropy_and_hand_number():
    logits, labels = hand_logits(), LABELS
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 3), labels[:, 1:].reshape(-1))
    got = L.sft_loss(logits, labels)
    assert got.shape == ()
    assert torch.allclose(got, expected, atol=1e-6)
    # By hand: 3 labelled tokens with NLL log 2, log 3, log 2 -> (log 12) / 3 = 0.8283022165960001.
    assert close(got, 0.8283022165960001, 1e-5)


def test_sft_loss_all_masked_is_zero_not_nan():
    labels = torch.full((2, 4), -100)
    logits = hand_logits().requires_grad_()
    loss = L.sft_loss(logits, labels)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and torch.all(logits.grad == 0)
