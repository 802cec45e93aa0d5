"""`vat.losses.orpo`: `orpo_loss` against numbers worked out by hand, TRL's formula, its gradient
and its numerical range (`ORPOModule` and `conf/method/orpo.yaml`: tests/modules/test_orpo.py).

Hand arithmetic used below. With ``odds(a) = e^a / (1 - e^a) = 1 / (1 - e^a) - 1``:

    e^-0.5 = 0.6065306597126334    1 - e^-0.5 = 0.3934693402873666
    e^-1   = 0.36787944117144233   1 - e^-1   = 0.6321205588285577
    e^-3   = 0.049787068367863944  1 - e^-3   = 0.950212931632136
    1 / (1 - e^-0.5) = 2.5414940825367984     1 / (1 - e^-1) = 1.5819767068693265

    odds(-0.5) = 1.5414940825367984     odds(-1) = 0.5819767068693265
    odds(-3)   = 0.05239569649125597
    log odds(-0.5) = -0.5 - log 0.3934693402873666 = -0.5 + 0.9327521295671886
                   = 0.43275212956718856
    log odds(-1)   = -1 - log 0.6321205588285577 = -1 + 0.45867514538708193
                   = -0.5413248546129181
    log odds(-3)   = -3 - log 0.950212931632136 = -3 + 0.051069180942701596
                   = -2.9489308190572983
"""

from __future__ import annotations

import decimal
import math

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate

from vat import losses as L
from vat.losses.orpo import LOGP_CEILING, log1mexp, log_odds

LOG_ODDS_HALF = 0.43275212956718856  # log odds(-0.5)
LOG_ODDS_ONE = -0.5413248546129181  # log odds(-1)
LOG_ODDS_THREE = -2.9489308190572983  # log odds(-3)
# The worked pair: chosen S = -1 over n = 2 tokens (a_c = -0.5), rejected S = -3 over 3 (a_r = -1).
#   z    = 0.43275212956718856 - (-0.5413248546129181) = 0.9740769841801067
#   e^-z = odds(-1) / odds(-0.5) = 0.5819767068693265 / 1.5414940825367984 = 0.3775406687981454
#   L_OR = -log sigma(z) = log(1 + e^-z) = log 1.3775406687981454 = 0.3202997852375365
#   NLL  = -S_c / n_c = 1 / 2 = 0.5
#   loss = 0.5 + 0.1 * 0.3202997852375365 = 0.5320299785237537
Z = 0.9740769841801067
L_OR = 0.3202997852375365
LOSS = 0.5320299785237537


def t(*xs: float, requires_grad: bool = False) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64, requires_grad=requires_grad)


def n(*xs: int) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.long)


def worked_pair(requires_grad: bool = False):
    return (t(-1.0, requires_grad=requires_grad), t(-3.0, requires_grad=requires_grad), n(2), n(3))


def trl_orpo(pc_avg, pr_avg, nll, beta):
    """TRL's `ORPOTrainer` (`odds_ratio_loss` and `get_batch_loss_metrics`), written out:
    length-averaged log-probs in, ``loss = policy_nll_loss - (beta * logsigmoid(log_odds)).mean()``
    with the NLL a token-mean cross entropy over the chosen half of the batch."""
    log_odds_trl = (pc_avg - pr_avg) - (
        torch.log1p(-torch.exp(pc_avg)) - torch.log1p(-torch.exp(pr_avg))
    )
    losses = beta * F.logsigmoid(log_odds_trl)
    return nll - losses.mean(), log_odds_trl


# --------------------------------------------------------------------------------------------------
# the loss by hand


def test_worked_pair_by_hand():
    out = L.orpo_loss(*worked_pair(), lam=0.1)
    assert isinstance(out, L.ORPOLossOutput)
    assert out.loss.item() == pytest.approx(LOSS, abs=1e-6)
    assert out.losses.tolist() == pytest.approx([LOSS], abs=1e-6)
    assert out.nll.item() == pytest.approx(0.5, abs=1e-12)
    assert out.odds_ratio_loss.item() == pytest.approx(L_OR, abs=1e-6)
    assert out.log_odds_ratio.tolist() == pytest.approx([Z], abs=1e-6)
    assert out.chosen_rewards.tolist() == pytest.approx([LOG_ODDS_HALF], abs=1e-6)
    assert out.rejected_rewards.tolist() == pytest.approx([LOG_ODDS_ONE], abs=1e-6)
    assert out.chosen_logps.tolist() == pytest.approx([-0.5]) and out.rejected_logps.tolist() == [
        -1.0
    ]


def test_default_lam_is_0_1_and_hydra_partial_selects_it():
    assert L.orpo_loss(*worked_pair()).loss.item() == pytest.approx(LOSS, abs=1e-6)
    fn = instantiate({"_target_": "vat.losses.orpo_loss", "_partial_": True, "lam": 1.0})
    # loss = 0.5 + 1.0 * 0.3202997852375365
    assert fn(*worked_pair()).loss.item() == pytest.approx(0.8202997852375365, abs=1e-6)


def test_batch_nll_is_the_token_mean_and_losses_split_it():
    # Pairs: (S_c, n_c, S_r, n_r) = (-1, 2, -3, 3) (the worked pair) and (-3, 1, -2, 4):
    #   pair 2: a_c = -3, a_r = -0.5
    #     e^-z2 = odds(-0.5) / odds(-3) = 1.5414940825367984 / 0.05239569649125597 = 29.42024223
    #     L_OR2 = log(1 + 29.420242229131354) = 3.4151082496242746
    #   NLL  = -(-1 - 3) / (2 + 1) = 4/3           (token mean, not the mean of 0.5 and 3)
    #   loss = 4/3 + 0.1 * (0.3202997852375365 + 3.4151082496242746) / 2 = 1.520103735076424
    #   nbar = 3 / 2: losses = (1 / 1.5 + 0.1 * 0.32029978, 3 / 1.5 + 0.1 * 3.41510825)
    #                        = (0.6986966451904203, 2.3415108249624277), whose mean is the loss
    out = L.orpo_loss(t(-1.0, -3.0), t(-3.0, -2.0), n(2, 1), n(3, 4), lam=0.1)
    assert out.nll.item() == pytest.approx(4 / 3, abs=1e-12)
    assert out.loss.item() == pytest.approx(1.520103735076424, abs=1e-6)
    assert out.losses.tolist() == pytest.approx([0.6986966451904203, 2.3415108249624277], abs=1e-6)
    assert out.losses.mean().item() == pytest.approx(out.loss.item(), abs=1e-12)
    assert out.log_odds_ratio.tolist() == pytest.approx(
        [Z, LOG_ODDS_THREE - LOG_ODDS_HALF], abs=1e-6
    )
    metrics = L.orpo_metrics(out)
    assert metrics["rewards/accuracies"].item() == 0.5  # z > 0 for the first pair only
    assert metrics["rewards/margins"].item() == pytest.approx(out.log_odds_ratio.mean().item())
    assert metrics["logps/chosen"].item() == pytest.approx((-0.5 - 3.0) / 2)
    assert metrics["nll_loss"].item() == pytest.approx(4 / 3)
    assert metrics["odds_ratio_loss"].item() == pytest.approx((L_OR + 3.4151082496242746) / 2)
    assert set(metrics) == {"rewards/chosen", "rewards/rejected", "rewards/margins",
                            "rewards/accuracies", "logps/chosen", "logps/rejected", "nll_loss",
                            "odds_ratio_loss"}  # fmt: skip
    assert all(v.dtype == torch.float32 and v.shape == () for v in metrics.values())


def test_lam_zero_is_exactly_the_nll():
    sc, sr, nc, nr = t(-1.0, -7.25, -0.125), t(-3.0, -2.0, -9.0), n(2, 5, 1), n(3, 4, 6)
    out = L.orpo_loss(sc, sr, nc, nr, lam=0.0)
    assert torch.equal(out.loss, -sc.sum() / nc.sum().double())
    assert out.odds_ratio_loss.item() > 0  # the odds-ratio term is computed, only not weighed


def test_agrees_with_trl():
    g = torch.Generator().manual_seed(0)
    nc, nr = torch.randint(1, 40, (16,), generator=g), torch.randint(1, 40, (16,), generator=g)
    # summed log-probs whose averages lie in (-4, -0.01)
    ac = -(torch.rand(16, generator=g, dtype=torch.float64) * 3.99 + 0.01)
    ar = -(torch.rand(16, generator=g, dtype=torch.float64) * 3.99 + 0.01)
    sc, sr = ac * nc, ar * nr
    for beta in (0.1, 0.5, 1.0):
        out = L.orpo_loss(sc, sr, nc, nr, lam=beta)
        trl_loss, trl_log_odds = trl_orpo(ac, ar, nll=-sc.sum() / nc.sum(), beta=beta)
        assert out.loss.item() == pytest.approx(trl_loss.item(), abs=1e-12)
        torch.testing.assert_close(out.log_odds_ratio, trl_log_odds, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------------------------------
# gradient


def test_gradient_by_hand_and_direction():
    # dL/dS_c = -1/n_c  -  lam * sigma(-z) / (1 - e^a_c) / n_c
    #         = -1/2 - 0.1 * 0.27406861906119695 * 2.5414940825367984 / 2 = -0.5348271886776532
    # dL/dS_r =  lam * sigma(-z) / (1 - e^a_r) / n_r
    #         = 0.1 * 0.27406861906119695 * 1.5819767068693265 / 3 = 0.01445233904795521
    # (sigma(-z) = 1 / (1 + e^z) = 0.27406861906119695)
    sc, sr, nc, nr = worked_pair(requires_grad=True)
    L.orpo_loss(sc, sr, nc, nr, lam=0.1).loss.backward()
    assert sc.grad.item() == pytest.approx(-0.5348271886776532, abs=1e-6)
    assert sr.grad.item() == pytest.approx(0.01445233904795521, abs=1e-6)
    # raising the chosen log-prob lowers the loss, raising the rejected one raises it
    base = L.orpo_loss(*worked_pair(), lam=0.1).loss.item()
    assert L.orpo_loss(t(-0.9), t(-3.0), n(2), n(3)).loss.item() < base
    assert L.orpo_loss(t(-1.0), t(-2.9), n(2), n(3)).loss.item() > base


def test_lam_zero_gradient_is_the_nll_gradient():
    sc, sr, nc, nr = worked_pair(requires_grad=True)
    L.orpo_loss(sc, sr, nc, nr, lam=0.0).loss.backward()
    assert sc.grad.item() == -0.5 and sr.grad.item() == 0.0


# --------------------------------------------------------------------------------------------------
# numerical range


def test_log1mexp_is_accurate_across_the_range():
    x = t(-1e-12, -1e-6, -0.1, -math.log(2.0), -1.0, -10.0, -50.0)
    with decimal.localcontext() as ctx:  # the reference, at 50 significant digits
        ctx.prec = 50
        expected = [float((1 - decimal.Decimal(v).exp()).ln()) for v in x.tolist()]
    torch.testing.assert_close(log1mexp(x), t(*expected), atol=0, rtol=1e-14)
    # float32 too: log(1 - e^-1e-7) = log(1e-7 - 5e-15) = -16.11809565...
    x32 = torch.tensor([-1e-7, -30.0])
    torch.testing.assert_close(log1mexp(x32), torch.tensor([-16.118095651, -9.357623e-14]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_finite_loss_and_gradient_near_zero_and_very_negative(dtype):
    # a = 0 exactly (every token certain, e.g. float32 rounding), a just below 0, a very negative
    sc = torch.tensor([0.0, -1e-9, -1e-3, -2e4, 0.0], dtype=dtype, requires_grad=True)
    sr = torch.tensor([-1e-9, 0.0, -2e4, -1e-3, 0.0], dtype=dtype, requires_grad=True)
    nc, nr = n(3, 1, 1, 10, 0), n(1, 2, 10, 1, 0)
    out = L.orpo_loss(sc, sr, nc, nr, lam=1.0)
    out.loss.backward()
    for x in (out.loss, out.losses, out.log_odds_ratio, out.chosen_rewards, sc.grad, sr.grad):
        assert torch.isfinite(x).all(), x
    # the cap: log odds(LOGP_CEILING) = -1e-6 - log(1 - e^-1e-6) = 13.815510057980095
    assert out.chosen_rewards[0].item() == pytest.approx(13.815510057980095, abs=1e-3)
    assert out.chosen_rewards[3].item() == pytest.approx(-2000.0, rel=1e-6)  # log odds ~ a
    # the cap passes the gradient: a rejected response the model is certain of is still pushed down
    assert sr.grad[1] > 0 and sr.grad[4] > 0
    # a chosen response whose odds already dominate gets the NLL gradient only: -1 / sum(n_c)
    assert sc.grad[2].item() == pytest.approx(-1 / 15, rel=1e-6)


def test_trl_formula_has_nan_gradients_where_the_cap_has_none():
    ac, ar = t(0.0, requires_grad=True), t(-1.0)
    trl_orpo(ac, ar, nll=-ac.sum(), beta=0.1)[0].backward()
    assert torch.isnan(ac.grad).all()
    sc = t(0.0, requires_grad=True)
    L.orpo_loss(sc, t(-1.0), n(1), n(1), lam=0.1).loss.backward()
    assert torch.isfinite(sc.grad).all()


def test_log_odds_is_monotone_and_capped():
    a = torch.linspace(-20, 0, 2001, dtype=torch.float64)
    lo = log_odds(a)
    assert (lo.diff() >= 0).all() and lo.max().item() == log_odds(t(LOGP_CEILING)).item()


# --------------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("lam", [-0.1, float("nan"), float("inf"), True])
def test_bad_lam_names_the_config_key(lam):
    with pytest.raises(ValueError, match=r"method\.module\.loss\.lam must be a finite number >= 0"):
        L.orpo_loss(*worked_pair(), lam=lam)


def test_bad_shapes_and_dtypes_raise():
    with pytest.raises(ValueError, match="same shape"):
        L.orpo_loss(t(-1.0, -2.0), t(-1.0), n(1, 1), n(1))
    with pytest.raises(ValueError, match="chosen_tokens must be an integer tensor"):
        L.orpo_loss(t(-1.0), t(-1.0), t(1.0), n(1))
    with pytest.raises(ValueError, match=r"rejected_tokens must have the log-probs' shape \(1,\)"):
        L.orpo_loss(t(-1.0), t(-1.0), n(1), n(1, 2))
    with pytest.raises(ValueError, match="floating point"):
        L.orpo_loss(n(-1), n(-1), n(1), n(1))
