"""`vat.losses.preference`: the preference losses (DPO/cDPO, IPO, hinge, robust DPO, SimPO), their
SFT term and metrics, against numbers worked out by hand (arithmetic in the comments).

Constants used below:
    ln 2                 = 0.6931471805599453
    -log sigma(1)        = log(1 + e^-1)  = log(1.3678794411714423) = 0.31326168751822286   (=: A)
    -log sigma(-1)       = log(1 + e)     = A + 1                  = 1.31326168751822286
    sigma(-1)            = 1 / (1 + e)                              = 0.2689414213699951
"""

from __future__ import annotations

import functools
import inspect
import math

import pytest
import torch
from hydra.utils import instantiate

from vat import losses as L

LN2 = 0.6931471805599453
A = 0.31326168751822286  # -log sigma(1)
SIGMA_MINUS_1 = 0.2689414213699951

PREFERENCE_LOSSES = [
    L.dpo_sigmoid_loss,
    L.ipo_loss,
    L.hinge_loss,
    L.robust_dpo_loss,
    L.simpo_loss,
]
# Losses that compare policy to reference through h = (pc - rc) - (pr - rr).
REFERENCE_LOSSES = [L.dpo_sigmoid_loss, L.ipo_loss, L.hinge_loss, L.robust_dpo_loss]


def t(*xs: float, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64, requires_grad=requires_grad)


def close(x: torch.Tensor | float, expected: float, tol: float = 1e-6) -> bool:
    return abs(float(x) - expected) <= tol


# The worked pair: pc = -1, pr = -3, rc = -2, rr = -2.
#   chosen log-ratio  pc - rc = -1 - (-2) = 1
#   rejected log-ratio pr - rr = -3 - (-2) = -1
#   h = 1 - (-1) = 2
def worked_pair(requires_grad: bool = False) -> tuple[torch.Tensor, ...]:
    return (t(-1.0, requires_grad=requires_grad), t(-3.0), t(-2.0), t(-2.0))


# --------------------------------------------------------------------------------------------------
# shared signature


@pytest.mark.parametrize("fn", PREFERENCE_LOSSES, ids=lambda f: f.__name__)
def test_preference_losses_share_one_signature(fn):
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params[:4]]
    assert names == [
        "policy_chosen_logps",
        "policy_rejected_logps",
        "reference_chosen_logps",
        "reference_rejected_logps",
    ]
    kw = {p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {"beta", "label_smoothing"} <= set(kw)
    assert kw["label_smoothing"].default == 0.0
    # Every hyperparameter has a default, so `_partial_: true` with no arguments works.
    assert all(p.default is not inspect.Parameter.empty for p in kw.values())


@pytest.mark.parametrize("fn", PREFERENCE_LOSSES, ids=lambda f: f.__name__)
def test_preference_losses_return_shapes_and_detached_rewards(fn):
    pc = torch.randn(5, requires_grad=True)
    out = fn(pc, torch.randn(5), torch.randn(5), torch.randn(5))
    assert isinstance(out, L.PreferenceLossOutput)
    assert out.loss.shape == ()
    assert out.losses.shape == out.chosen_rewards.shape == out.rejected_rewards.shape == (5,)
    assert torch.allclose(out.loss, out.losses.mean())
    assert out.loss.requires_grad
    assert not out.chosen_rewards.requires_grad and not out.rejected_rewards.requires_grad


def test_hydra_partial_selects_a_loss():
    # How the LightningModule gets its loss: `_target_` + `_partial_: true` + hyperparameters.
    fn = instantiate({"_target_": "vat.losses.dpo_sigmoid_loss", "_partial_": True, "beta": 0.5})
    assert isinstance(fn, functools.partial)
    assert close(fn(*worked_pair()).loss, A)  # beta * h = 0.5 * 2 = 1 -> -log sigma(1)


# --------------------------------------------------------------------------------------------------
# DPO / cDPO


@pytest.mark.parametrize("beta", [0.01, 0.1, 0.5, 1.0, 10.0])
def test_dpo_at_zero_margin_is_ln2_for_any_beta(beta):
    # policy == reference -> h = 0 -> -log sigma(0) = -log(1/2) = ln 2, rewards 0.
    logps = t(-3.0, -10.0, -0.5)
    out = L.dpo_sigmoid_loss(logps, logps - 1, logps, logps - 1, beta=beta)
    assert torch.allclose(out.losses, torch.full((3,), LN2, dtype=torch.float64))
    assert close(out.loss, LN2)
    assert torch.all(out.chosen_rewards == 0) and torch.all(out.rejected_rewards == 0)


def test_dpo_worked_pair():
    # beta = 0.5, h = 2 -> beta * h = 1 -> loss = -log sigma(1) = log(1 + e^-1) = A.
    out = L.dpo_sigmoid_loss(*worked_pair(), beta=0.5)
    assert close(out.loss, 0.3132616875)
    assert close(out.loss, A)
    # rewards: beta * (pc - rc) = 0.5 * 1 = 0.5; beta * (pr - rr) = 0.5 * (-1) = -0.5.
    assert close(out.chosen_rewards[0], 0.5)
    assert close(out.rejected_rewards[0], -0.5)


def test_dpo_default_beta_is_0_1():
    # beta = 0.1, h = 10 (pc - rc = 5, pr - rr = -5) -> beta * h = 1 -> A again.
    out = L.dpo_sigmoid_loss(t(0.0), t(-10.0), t(-5.0), t(-5.0))
    assert close(out.loss, A)


def test_cdpo_label_smoothing_by_hand():
    # eps = 0.1, beta * h = 1:
    #   0.9 * (-log sigma(1)) + 0.1 * (-log sigma(-1)) = 0.9 * A + 0.1 * (A + 1) = A + 0.1
    #   = 0.31326168751822286 + 0.1 = 0.41326168751822286
    out = L.dpo_sigmoid_loss(*worked_pair(), beta=0.5, label_smoothing=0.1)
    assert close(out.loss, 0.41326168751822286)
    # Smoothing changes the loss, not the rewards.
    assert close(out.chosen_rewards[0], 0.5) and close(out.rejected_rewards[0], -0.5)


def test_dpo_gradient_sign_and_value():
    pc, pr, rc, rr = worked_pair(requires_grad=True)
    L.dpo_sigmoid_loss(pc, pr, rc, rr, beta=0.5).loss.backward()
    # d/dpc [-log sigma(beta h)] = -beta * sigma(-beta h) = -0.5 * sigma(-1) = -0.13447071068...
    # Negative: raising the chosen log-prob lowers the loss.
    assert pc.grad is not None and pc.grad[0] < 0
    assert close(pc.grad[0], -0.5 * SIGMA_MINUS_1)


def test_dpo_batch_mean():
    # Pair 1: the worked pair (loss A). Pair 2: h = 0 (loss ln 2). Mean = (A + ln 2) / 2.
    out = L.dpo_sigmoid_loss(t(-1.0, -1.0), t(-3.0, -1.0), t(-2.0, -1.0), t(-2.0, -1.0), beta=0.5)
    assert close(out.losses[0], A) and close(out.losses[1], LN2)
    assert close(out.loss, (0.31326168751822286 + 0.6931471805599453) / 2)


# --------------------------------------------------------------------------------------------------
# IPO, hinge, robust DPO, SimPO


def test_ipo_by_hand():
    # h = 2. beta = 0.5: target 1/(2*0.5) = 1 -> (2 - 1)^2 = 1.
    assert close(L.ipo_loss(*worked_pair(), beta=0.5).loss, 1.0)
    # beta = 0.25: target 1/(2*0.25) = 2 -> (2 - 2)^2 = 0.
    assert close(L.ipo_loss(*worked_pair(), beta=0.25).loss, 0.0)
    # beta = 0.1: target 5 -> (2 - 5)^2 = 9.
    out = L.ipo_loss(*worked_pair(), beta=0.1)
    assert close(out.loss, 9.0)
    # rewards: 0.1 * 1 = 0.1, 0.1 * (-1) = -0.1.
    assert close(out.chosen_rewards[0], 0.1) and close(out.rejected_rewards[0], -0.1)


def test_ipo_gradient_pulls_margin_to_target():
    # beta = 0.1, h = 2 < target 5: d/dpc (h - 5)^2 = 2 * (2 - 5) = -6 (raise pc).
    pc, pr, rc, rr = worked_pair(requires_grad=True)
    L.ipo_loss(pc, pr, rc, rr, beta=0.1).loss.backward()
    assert pc.grad is not None and close(pc.grad[0], -6.0)


def test_hinge_by_hand():
    # h = 2. beta = 0.25: relu(1 - 0.5) = 0.5. beta = 0.5: relu(1 - 1) = 0. beta = 1: relu(-1) = 0.
    assert close(L.hinge_loss(*worked_pair(), beta=0.25).loss, 0.5)
    assert close(L.hinge_loss(*worked_pair(), beta=0.5).loss, 0.0)
    assert close(L.hinge_loss(*worked_pair(), beta=1.0).loss, 0.0)
    # A wrong-way pair (h = -2, swap chosen and rejected): relu(1 + 0.25 * 2) = 1.5.
    pc, pr, rc, rr = worked_pair()
    assert close(L.hinge_loss(pr, pc, rr, rc, beta=0.25).loss, 1.5)


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_robust_with_zero_noise_is_plain_dpo(beta):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(7, generator=g, dtype=torch.float64) for _ in range(4)]
    robust = L.robust_dpo_loss(*xs, beta=beta, label_smoothing=0.0)
    plain = L.dpo_sigmoid_loss(*xs, beta=beta)
    assert torch.allclose(robust.losses, plain.losses, atol=1e-12)
    assert torch.equal(robust.chosen_rewards, plain.chosen_rewards)


def test_robust_by_hand():
    # eps = 0.1, beta * h = 1:
    #   (0.9 * A - 0.1 * (A + 1)) / 0.8 = (0.8 A - 0.1) / 0.8 = A - 0.125 = 0.18826168751822286
    out = L.robust_dpo_loss(*worked_pair(), beta=0.5, label_smoothing=0.1)
    assert close(out.loss, 0.18826168751822286)
    # At h = 0: ((1 - eps) ln 2 - eps ln 2) / (1 - 2 eps) = ln 2 for any eps.
    z = t(-1.0)
    assert close(L.robust_dpo_loss(z, z, z, z, beta=0.5, label_smoothing=0.3).loss, LN2)


def test_simpo_by_hand():
    # beta = 1, gamma = 1, pc = -1, pr = -3: z = 1 * (-1 - (-3)) - 1 = 1 -> -log sigma(1) = A.
    out = L.simpo_loss(t(-1.0), t(-3.0), None, None, beta=1.0, gamma=1.0)
    assert close(out.loss, A)
    # rewards: beta * pc = -1, beta * pr = -3.
    assert close(out.chosen_rewards[0], -1.0) and close(out.rejected_rewards[0], -3.0)


def test_simpo_defaults_and_ignored_reference():
    # Defaults beta = 2, gamma = 0.5; pc = -1, pr = -1.25: z = 2 * 0.25 - 0.5 = 0 -> ln 2.
    out = L.simpo_loss(t(-1.0), t(-1.25))
    assert close(out.loss, LN2)
    # rewards: 2 * (-1) = -2, 2 * (-1.25) = -2.5.
    assert close(out.chosen_rewards[0], -2.0) and close(out.rejected_rewards[0], -2.5)
    # Any reference values give the same result (reference-free).
    ref = L.simpo_loss(t(-1.0), t(-1.25), t(5.0), t(-7.0))
    assert torch.equal(ref.losses, out.losses)


def test_simpo_label_smoothing():
    # beta = 1, gamma = 1, z = 1, eps = 0.1: A + 0.1 (as for cDPO).
    out = L.simpo_loss(t(-1.0), t(-3.0), beta=1.0, gamma=1.0, label_smoothing=0.1)
    assert close(out.loss, 0.41326168751822286)


# --------------------------------------------------------------------------------------------------
# combinations and metrics


def test_preference_plus_sft():
    pref = L.dpo_sigmoid_loss(*worked_pair(), beta=0.5)  # loss A
    # B = 1, NLL 2, weight 0.5: L = A + 0.5 * 2 = A + 1.
    assert close(L.preference_plus_sft(pref, t(2.0), 0.5), A + 1.0)
    batch = L.dpo_sigmoid_loss(t(-1.0, -1.0), t(-3.0, -1.0), t(-2.0, -1.0), t(-2.0, -1.0), beta=0.5)
    # losses (A, ln 2), mean (A + ln 2) / 2; NLL mean (2 + 4) / 2 = 3; weight 0.5 -> + 1.5.
    expected = (A + LN2) / 2 + 1.5
    assert close(L.preference_plus_sft(batch, t(2.0, 4.0), 0.5), expected)
    assert close(L.preference_plus_sft(batch, torch.tensor(3.0), 0.5), expected)
    # weight 0: the preference loss itself, even if the NLL is NaN.
    assert L.preference_plus_sft(batch, t(math.nan, 1.0), 0.0) is batch.loss


def test_preference_plus_sft_errors():
    pref = L.dpo_sigmoid_loss(*worked_pair())
    with pytest.raises(ValueError, match="weight"):
        L.preference_plus_sft(pref, t(1.0), -0.1)
    with pytest.raises(ValueError, match="batch shape"):
        L.preference_plus_sft(pref, t(1.0, 2.0), 1.0)


def test_preference_metrics_names_and_values():
    # chosen [0.5, -1.0, 0.2], rejected [-0.5, 0.0, 0.2]:
    #   chosen mean   = (0.5 - 1.0 + 0.2) / 3 = -0.1
    #   rejected mean = (-0.5 + 0.0 + 0.2) / 3 = -0.1
    #   margins [1.0, -1.0, 0.0] -> mean 0
    #   accuracies: only pair 0 has chosen > rejected (pair 2 is a tie) -> 1/3
    out = L.PreferenceLossOutput(
        loss=torch.tensor(0.0),
        losses=torch.zeros(3),
        chosen_rewards=torch.tensor([0.5, -1.0, 0.2]),
        rejected_rewards=torch.tensor([-0.5, 0.0, 0.2]),
    )
    m = L.preference_metrics(out)
    assert set(m) == {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"}
    assert close(m["rewards/chosen"], -0.1)
    assert close(m["rewards/rejected"], -0.1)
    assert close(m["rewards/margins"], 0.0)
    assert close(m["rewards/accuracies"], 1 / 3)
    assert all(v.shape == () and v.dtype == torch.float32 for v in m.values())


def test_preference_metrics_from_a_loss():
    # The worked pair: rewards 0.5 and -0.5 -> margin 1, accuracy 1.
    m = L.preference_metrics(L.dpo_sigmoid_loss(*worked_pair(requires_grad=True), beta=0.5))
    assert close(m["rewards/margins"], 1.0) and close(m["rewards/accuracies"], 1.0)
    assert not any(v.requires_grad for v in m.values())


# --------------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("fn", REFERENCE_LOSSES, ids=lambda f: f.__name__)
def test_mismatched_shapes_raise(fn):
    with pytest.raises(ValueError, match="same shape"):
        fn(t(1.0, 2.0), t(1.0, 2.0), t(1.0), t(1.0, 2.0))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        fn(*(torch.zeros(2, 3) for _ in range(4)))


def test_simpo_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="same shape"):
        L.simpo_loss(t(1.0, 2.0), t(1.0))


@pytest.mark.parametrize("fn", PREFERENCE_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("beta", [0.0, -0.1, math.nan, math.inf])
def test_non_positive_beta_raises(fn, beta):
    with pytest.raises(ValueError, match="beta"):
        fn(*worked_pair(), beta=beta)


@pytest.mark.parametrize("eps", [0.5, 0.7, -0.1])
def test_robust_noise_rate_out_of_range_raises(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        L.robust_dpo_loss(*worked_pair(), label_smoothing=eps)


@pytest.mark.parametrize("fn", [L.ipo_loss, L.hinge_loss], ids=lambda f: f.__name__)
def test_label_smoothing_is_refused_where_undefined(fn):
    with pytest.raises(ValueError, match="label_smoothing"):
        fn(*worked_pair(), label_smoothing=0.1)


def test_cdpo_label_smoothing_out_of_range_raises():
    with pytest.raises(ValueError, match="label_smoothing"):
        L.dpo_sigmoid_loss(*worked_pair(), label_smoothing=1.5)
