"""ORPO (Hong, Lee, Thorne 2024, "ORPO: Monolithic Preference Optimization without Reference
Model", arXiv 2403.07691): SFT on the chosen response plus an odds-ratio penalty on the rejected
one, in one stage and without a reference model.

A pure function of tensors, like `vat.losses.preference`, but with its own signature: ORPO reads no
reference log-probs, and its SFT term needs the token counts. Per pair ``i`` of the batch, from the
summed response log-probs ``S`` and response token counts ``n`` that `vat.forward.pair_logps`
returns:

- ``a = S / n``: the length-averaged log-probability ``log P(y | x) = (1/n) sum_t log p(y_t | x,
  y_<t)``, the paper's ``P_theta(y | x)`` in log, always ``< 0``;
- ``odds(y | x) = P / (1 - P)``, so ``log odds = a - log(1 - e^a)``;
- ``z = log odds(y_c | x) - log odds(y_r | x)``: the log odds ratio.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

from vat.losses.preference import (
    PreferenceLossOutput,
    check_logps,
    check_number,
    preference_metrics,
)

# The largest length-averaged log-prob `log_odds` uses; above it the log odds are capped. A float32
# token log-prob is ``logit - logsumexp(logits)``, rounded at the scale of the logits (ulp ~1e-6
# for logits of order 10), so an average closer to 0 than this cannot be told from a certain
# prediction. The cap keeps ``log odds <= 13.8`` and its slope ``1 / (1 - e^a) <= 1e6`` (at
# ``a = 0`` both would be infinite: TRL's formula gives NaN gradients there).
LOGP_CEILING = -1e-6


class ORPOLossOutput(NamedTuple):
    """What `orpo_loss` returns: the loss with its graph, and detached terms for logging.

    loss: scalar ``NLL + lam * mean_i L_OR_i`` (what the optimiser sees), ``== losses.mean()``.
    losses: ``(B,)`` per-pair losses whose batch mean is ``loss`` (see `orpo_loss`).
    nll: scalar, the token-mean NLL of the chosen responses (detached).
    odds_ratio_loss: scalar, ``mean_i L_OR_i`` before the ``lam`` factor (detached).
    log_odds_ratio: ``(B,)`` the log odds ratio ``z`` (detached).
    chosen_rewards: ``(B,)`` ``log odds(y_c | x)``, the reward ORPO's Bradley-Terry term compares
        (detached).
    rejected_rewards: ``(B,)`` ``log odds(y_r | x)`` (detached).
    chosen_logps: ``(B,)`` length-averaged ``log P(y_c | x)`` (detached).
    rejected_logps: ``(B,)`` length-averaged ``log P(y_r | x)`` (detached).
    """

    loss: torch.Tensor
    losses: torch.Tensor
    nll: torch.Tensor
    odds_ratio_loss: torch.Tensor
    log_odds_ratio: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor
    chosen_logps: torch.Tensor
    rejected_logps: torch.Tensor


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - e^x)`` for ``x < 0``, accurate over the whole range (Maechler 2012, "Accurately
    computing log(1 - exp(-|a|))"): ``log(-expm1(x))`` for ``x > -ln 2``, where ``1 - e^x`` is
    small and ``expm1`` keeps its digits, else ``log1p(-e^x)``. Both branches are finite for
    finite ``x < 0``, so `torch.where` passes no NaN gradient through the unused one."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_odds(avg_logps: torch.Tensor) -> torch.Tensor:
    """``log(P / (1 - P)) = a - log(1 - e^a)`` of length-averaged log-probs ``a = log P``.

    ``a`` is capped at `LOGP_CEILING`, so the result is finite for every finite input. The cap
    passes the gradient straight through: ``d/da log odds = 1 / (1 - e^a)`` below it and that
    slope at the cap (``~1e6``) above it, so a response the model is certain of (a rejected one
    above all) is still pushed, never frozen by a zero gradient."""
    a = avg_logps - (avg_logps - LOGP_CEILING).clamp(min=0).detach()
    return a - log1mexp(a)


def _check_counts(logps: torch.Tensor, **counts: torch.Tensor) -> None:
    """Token counts must be integer tensors of the log-probs' shape ``(B,)``."""
    for name, n in counts.items():
        if not isinstance(n, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(n).__name__}")
        if n.is_floating_point() or n.is_complex() or n.dtype == torch.bool:
            raise ValueError(f"{name} must be an integer tensor of token counts, got {n.dtype}")
        if n.shape != logps.shape:
            raise ValueError(
                f"{name} must have the log-probs' shape {tuple(logps.shape)}, got {tuple(n.shape)}"
            )


def orpo_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    *,
    lam: float = 0.1,
) -> ORPOLossOutput:
    """ORPO: the chosen responses' NLL plus ``lam`` times the odds-ratio loss::

        L    = NLL + lam * mean_i L_OR_i
        NLL  = -(sum_i S_c,i) / (sum_i n_c,i)
        L_OR = -log sigma(z),    z = log odds(a_c) - log odds(a_r),    a = S / n

    Inputs, all ``(B,)``: ``chosen_logps`` / ``rejected_logps`` the **summed** response log-probs
    ``S`` (float), ``chosen_tokens`` / ``rejected_tokens`` their token counts ``n`` (integer), as
    `vat.forward.pair_logps` returns them (chosen rows, then rejected rows). The log odds read the
    length-averaged ``a = S / max(n, 1)``, as in the paper and TRL (`odds_ratio_loss`). The NLL is
    the token mean over all chosen tokens of the batch, as in TRL and the authors' code (the
    paper writes a per-response mean; the two agree when the responses have one length): it is
    `vat.losses.sft_loss` on the chosen responses, so ``lam = 0`` is SFT on the chosen half.

    The odds-ratio gradient, as the paper derives it, is
    ``-sigma(-z) * (grad a_c / (1 - P_c) - grad a_r / (1 - P_r))``: it fades once the chosen odds
    dominate, and the ``1 / (1 - P)`` factors push hardest on a response the model already finds
    likely. ``log(1 - P)`` is computed stably (`log1mexp`) and ``a`` is capped just below 0
    (`LOGP_CEILING`), so no finite input gives NaN or inf. No reference model enters.

    ``lam`` is the paper's lambda (TRL's ``ORPOConfig.beta``, default 0.1), a finite number >= 0.

    Per-pair ``losses``: ``-S_c,i / nbar + lam * L_OR_i`` with ``nbar = sum_j n_c,j / B``, the
    split of the token-mean NLL whose batch mean is ``loss`` (a pair's share of the NLL grows with
    its length, as in SFT). Rewards: the log odds of each response (the quantity whose difference
    ``L_OR`` compares, as DPO's implicit reward is ``beta log pi / pi_ref``); TRL logs
    ``beta * a`` instead, and its ``log_odds_ratio`` is our ``log_odds_ratio``.
    """
    check_number("method.module.loss.lam", lam, positive=False)
    check_logps(chosen_logps=chosen_logps, rejected_logps=rejected_logps)
    _check_counts(chosen_logps, chosen_tokens=chosen_tokens, rejected_tokens=rejected_tokens)
    dtype = chosen_logps.dtype
    avg_chosen = chosen_logps / chosen_tokens.clamp(min=1).to(dtype)
    avg_rejected = rejected_logps / rejected_tokens.clamp(min=1).to(dtype)
    chosen_log_odds, rejected_log_odds = log_odds(avg_chosen), log_odds(avg_rejected)
    z = chosen_log_odds - rejected_log_odds
    or_losses = -F.logsigmoid(z)

    n_chosen = chosen_tokens.sum().clamp(min=1).to(dtype)  # a batch without a token: NLL 0, not NaN
    nll = -chosen_logps.sum() / n_chosen
    loss = nll + lam * or_losses.mean()
    losses = -chosen_logps / (n_chosen / chosen_logps.numel()) + lam * or_losses
    return ORPOLossOutput(
        loss=loss,
        losses=losses,
        nll=nll.detach(),
        odds_ratio_loss=or_losses.detach().mean(),
        log_odds_ratio=z.detach(),
        chosen_rewards=chosen_log_odds.detach(),
        rejected_rewards=rejected_log_odds.detach(),
        chosen_logps=avg_chosen.detach(),
        rejected_logps=avg_rejected.detach(),
    )


@torch.no_grad()
def orpo_metrics(out: ORPOLossOutput) -> dict[str, torch.Tensor]:
    """Batch means for logging, in DPO's and TRL's names (float scalar tensors, detached).

    - ``rewards/chosen``, ``rewards/rejected``, ``rewards/margins``, ``rewards/accuracies``: of the
      log odds, as `preference_metrics` computes them; ``rewards/accuracies`` is the share of pairs
      with ``z > 0`` (ties count as wrong), ``rewards/margins`` the mean ``z``;
    - ``logps/chosen``, ``logps/rejected``: mean length-averaged log-probs (TRL's names);
    - ``nll_loss``: the NLL term; ``odds_ratio_loss``: ``mean_i L_OR_i`` before ``lam``.
    """
    rewards = PreferenceLossOutput(out.loss, out.losses, out.chosen_rewards, out.rejected_rewards)
    return {
        **preference_metrics(rewards),
        "logps/chosen": out.chosen_logps.float().mean(),
        "logps/rejected": out.rejected_logps.float().mean(),
        "nll_loss": out.nll.float(),
        "odds_ratio_loss": out.odds_ratio_loss.float(),
    }
