"""Tax-aware alignment: anchor penalties that hold the non-target values still while DPO moves one.

The Value Alignment Tax is the shift of the values nobody aimed at. DPO toward a target value only
sees the target's pairs, so nothing in its loss says "leave the other nine alone". An anchored
objective adds that sentence: alongside each batch of target pairs it scores a batch of **anchor
pairs**, train-split (express, suppress) pairs of the *other* values (`vat.data.placebo.
mixed_pairs` with the target excluded; the held-out split is never read), and penalises any change
of their implicit margins away from the reference model's::

    L = L_DPO(target pairs) + lambda * P(anchor pairs)

With ``pc, pr, rc, rr`` the policy and reference log-probs of an anchor pair's chosen (express) and
rejected (suppress) response, its margin shift is

    h = (pc - pr) - (rc - rr)       = (pc - rc) - (pr - rr)

the same ``h`` DPO pushes up on target pairs (`vat.losses`): 0 while policy = reference, positive
when the policy has come to prefer that value's express action more than the reference did. The
likelihood probe measures exactly such margins (express over suppress, per value) on held-out
scenes, so a shift of ``h`` on train pairs of value v is the training-side image of v's tax.

Two penalties, both pure functions with one signature (selected by ``_target_`` as the DPO
variants are)::

    penalty_fn(pc, pr, rc, rr, *, beta, values) -> AnchorPenalty

- `pair_anchor`: ``P = mean_i (beta h_i)^2``, every anchor pair held at its reference margin. In
  units of DPO's implicit reward (``beta h``); its gradient ``2 beta^2 h_i`` grows with the shift
  and points back to 0. It is also the second-order expansion of the KL between the policy's and
  the reference's Bradley-Terry preference of the pair (``KL ~ (beta h)^2 / 8`` near ``h = 0``).
- `value_anchor`: ``P = mean_v (beta * mean_{i in v} h_i)^2`` over the values present in the batch:
  only each non-target value's *mean* margin is held, not every pair's. The reason: VAT counts the
  per-value mean shift; pair-level changes that cancel within a value cost nothing in VAT, and
  forbidding them (as `pair_anchor` does) spends target gain on constraining features the target
  may share with single pairs. With one anchor pair per value in a batch the two are equal; with
  several (``method.anchor_per_pair`` > 1) the value form is the weaker, VAT-shaped constraint.

``lambda = 0`` trains exactly plain DPO (`anchored_loss` returns the target loss untouched, the
penalty is not even read), so a lambda sweep starts at the baseline.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import torch

from vat.settings import Rule, number

__all__ = [
    "ANCHOR_PER_PAIR",
    "ANCHOR_WEIGHT",
    "AnchorPenalty",
    "anchored_loss",
    "check_weight",
    "margin_shift",
    "pair_anchor",
    "value_anchor",
]


class AnchorPenalty(NamedTuple):
    """penalty: scalar (0 for an empty anchor batch); shifts: ``(A,)`` detached ``beta * h``."""

    penalty: torch.Tensor
    shifts: torch.Tensor


def _check(beta: float, *tensors: torch.Tensor) -> None:
    if not (isinstance(beta, Real) and not isinstance(beta, bool) and beta > 0
            and math.isfinite(beta)):  # fmt: skip
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise ValueError(f"anchor log-probs must all have one shape (A,), got {sorted(shapes)}")


def margin_shift(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor):
    """``h = (pc - pr) - (rc - rr)``: how far the policy's margin moved from the reference's."""
    return (pc - pr) - (rc - rr)


def _scaled_shift(beta: float, pc, pr, rc, rr) -> torch.Tensor:
    """``beta * h`` after checking beta and the shapes (both penalties start here)."""
    _check(beta, pc, pr, rc, rr)
    return beta * margin_shift(pc, pr, rc, rr)


def pair_anchor(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    values: torch.Tensor | None = None,
) -> AnchorPenalty:
    """``P = mean_i (beta h_i)^2`` over the anchor pairs (``values`` is accepted and unused)."""
    s = _scaled_shift(beta, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                      reference_rejected_logps)  # fmt: skip
    if s.numel() == 0:
        return AnchorPenalty(s.sum(), s.detach())
    return AnchorPenalty((s * s).mean(), s.detach())


def value_anchor(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    values: torch.Tensor | None = None,
) -> AnchorPenalty:
    """``P = mean_v (beta * mean_{i: values_i = v} h_i)^2`` over the values in the batch.

    ``values`` ``(A,)`` integer: each anchor pair's value (any ids; only equality matters)."""
    if values is None or tuple(values.shape) != tuple(policy_chosen_logps.shape):
        raise ValueError("value_anchor needs `values` (A,): the value of each anchor pair")
    s = _scaled_shift(beta, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                      reference_rejected_logps)  # fmt: skip
    if s.numel() == 0:
        return AnchorPenalty(s.sum(), s.detach())
    ids, group = torch.unique(values, return_inverse=True)
    sums = s.new_zeros(len(ids)).index_add(0, group, s)
    counts = s.new_zeros(len(ids)).index_add(0, group, torch.ones_like(s))
    means = sums / counts
    return AnchorPenalty((means * means).mean(), s.detach())


#: lambda's rule, written once: `vat.preflight` runs it on the config before anything loads, the
#: DPO module when it is built, `anchored_loss` on what it is given.
ANCHOR_WEIGHT = Rule(number(0, finite=True), "a finite number >= 0 (lambda)")
#: method.anchor_per_pair's rule: anchor pairs per target pair (0: plain DPO).
ANCHOR_PER_PAIR = Rule(number(0, integer=True), "an integer >= 0 (anchor pairs per target pair)")


def check_weight(weight: float) -> None:
    """lambda must be a finite number >= 0 (a bool is not a number here)."""
    ANCHOR_WEIGHT.check("method.module.anchor_weight", weight)


def anchored_loss(target_loss: torch.Tensor, anchor: AnchorPenalty | None, weight: float):
    """``target_loss + weight * anchor.penalty``; ``weight = 0`` (or no anchor) returns
    ``target_loss`` itself, so lambda = 0 is plain DPO bit for bit."""
    check_weight(weight)
    if weight == 0 or anchor is None:
        return target_loss
    return target_loss + weight * anchor.penalty
