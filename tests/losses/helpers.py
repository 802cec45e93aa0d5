"""Hand-computed logits and labels shared by the `vat.losses` token-level tests (`test_tokens`,
`test_sft`): every token log-prob can be read off by hand (arithmetic in the comments)."""

from __future__ import annotations

import math

import torch

LN2 = 0.6931471805599453


def close(x: torch.Tensor | float, expected: float, tol: float = 1e-6) -> bool:
    return abs(float(x) - expected) <= tol


# vocab 3, batch 2, length 4. Rows of logits given as log-probabilities (plus a constant, which
# log_softmax removes) so that each token log-prob can be read off by hand.
#
# sequence 0: labels [-100, -100, 2, 1] (two prompt positions masked)
#   logits[0, 0] predicts labels[0, 1] = -100 -> masked
#   logits[0, 1] = log[0.25, 0.25, 0.5]  predicts 2 -> log 0.5
#   logits[0, 2] = [5, 5, 5] (uniform)   predicts 1 -> log(1/3)
#   logits[0, 3] never used (nothing to predict after the last token)
#   sum = log 0.5 + log(1/3) = -log 6 = -1.791759469228055, n = 2, mean = -0.8958797346140275
# sequence 1: labels [0, 0, -100, -100] (padding at the end)
#   logits[1, 0] = log[0.5, 0.25, 0.25] + 3 predicts 0 -> log 0.5
#   logits[1, 1], logits[1, 2] predict padding -> masked
#   sum = -log 2 = -0.6931471805599453, n = 1, mean = -0.6931471805599453
LN6 = 1.791759469228055
LABELS = torch.tensor([[-100, -100, 2, 1], [0, 0, -100, -100]])


def hand_logits() -> torch.Tensor:
    junk = [100.0, -50.0, 3.0]  # large values where the logits must be ignored
    rows = [
        [
            junk,
            [math.log(0.25), math.log(0.25), math.log(0.5)],
            [5.0, 5.0, 5.0],
            junk,
        ],
        [
            [math.log(0.5) + 3, math.log(0.25) + 3, math.log(0.25) + 3],
            junk,
            junk,
            junk,
        ],
    ]
    return torch.tensor(rows, dtype=torch.float32)
