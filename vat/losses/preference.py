"""The DPO family of preference losses, the RPO combination with SFT, and their reward metrics.

Every function here is a pure function of tensors: no module state, no config lookups, no string
dispatch. A training step picks one preference loss through Hydra (``_target_`` with
``_partial_: true``), so all of them share one signature::

    loss_fn(policy_chosen_logps, policy_rejected_logps,
            reference_chosen_logps, reference_rejected_logps,
            *, beta, label_smoothing, **extra) -> PreferenceLossOutput

The four inputs are float tensors of shape ``(B,)``: the summed (or, for IPO and SimPO, the
length-averaged) log-probability of each response given its prompt, as returned by
`sequence_logps`. Notation used in the docstrings below, per pair ``i`` of the batch:

- ``pc, pr``: policy log-probs of the chosen / rejected response;
- ``rc, rr``: the same under the frozen reference model;
- ``h = (pc - rc) - (pr - rr)``: the difference of the implicit rewards divided by ``beta``
  (``beta * (pc - rc)`` is the DPO implicit reward of the chosen response, up to a prompt-only
  term that cancels in the difference);
- ``sigma`` the logistic function, ``log sigma(x) = -softplus(-x)`` computed stably by
  `torch.nn.functional.logsigmoid`.

The ``loss`` of a `PreferenceLossOutput` is the mean of ``losses`` over the batch; the rewards are
detached (they are for logging only, see `preference_metrics`).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import NamedTuple

import torch
import torch.nn.functional as F


class PreferenceLossOutput(NamedTuple):
    """What every preference loss returns (a NamedTuple so that it unpacks and compiles cleanly).

    loss: scalar, the mean of ``losses`` over the batch (what the optimiser sees).
    losses: ``(B,)`` per-pair losses (kept for weighting or per-example logging).
    chosen_rewards: ``(B,)`` detached implicit reward of the chosen response.
    rejected_rewards: ``(B,)`` detached implicit reward of the rejected response.
    """

    loss: torch.Tensor
    losses: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @classmethod
    def of(
        cls, losses: torch.Tensor, chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
    ) -> PreferenceLossOutput:
        """The output for per-pair ``losses``: ``loss`` is their batch mean."""
        return cls(losses.mean(), losses, chosen_rewards, rejected_rewards)


# --------------------------------------------------------------------------------------------------
# validation


def check_number(name: str, x: float, *, positive: bool) -> None:
    """`x` must be a finite real number (not a bool), > 0 if `positive` else >= 0."""
    # `not x > 0` also rejects NaN, which `x <= 0` would let through.
    if not (
        isinstance(x, Real)
        and not isinstance(x, bool)
        and (x > 0 if positive else x >= 0)
        and math.isfinite(x)
    ):
        raise ValueError(f"{name} must be a finite number {'>' if positive else '>='} 0, got {x!r}")


def check_logps(**tensors: torch.Tensor) -> None:
    """All given tensors must be floating point and share one 1-D shape ``(B,)``."""
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be a floating point tensor, got dtype {t.dtype}")
        if t.ndim != 1:
            raise ValueError(f"{name} must have shape (B,), got shape {tuple(t.shape)}")
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name}={shape}" for name, shape in shapes.items())
        raise ValueError(f"sequence log-prob tensors must all have the same shape (B,): {listed}")


def _check_label_smoothing(label_smoothing: float, *, upper: float, upper_open: bool) -> None:
    ok = 0.0 <= label_smoothing < upper if upper_open else 0.0 <= label_smoothing <= upper
    if not ok:
        bracket = ")" if upper_open else "]"
        raise ValueError(
            f"label_smoothing must lie in [0, {upper}{bracket}, got {label_smoothing!r}"
        )


def _reject_label_smoothing(label_smoothing: float, loss_name: str) -> None:
    # Accepted only so that the signature is uniform; silently ignoring a configured value would
    # train something other than what the config says.
    if label_smoothing != 0.0:
        raise ValueError(
            f"{loss_name} has no label smoothing; got label_smoothing={label_smoothing}"
        )


def _reference_margin(
    beta: float,
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """``h = (pc - rc) - (pr - rr)`` and the detached rewards ``(beta (pc - rc), beta (pr - rr))``

    All are ``(B,)``; ``h`` keeps its graph, the rewards are for logging. Validates the inputs
    (shapes, beta) first, so every reference-based loss checks them in one place.
    """
    check_number("beta", beta, positive=True)
    check_logps(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    h = chosen_logratios - rejected_logratios
    return h, (beta * chosen_logratios.detach(), beta * rejected_logratios.detach())


def _smoothed_nll(z: torch.Tensor, eps: float) -> torch.Tensor:
    """The Bradley-Terry NLL of a logit margin ``z`` against the smoothed target ``1 - eps``::

        -(1 - eps) * log sigma(z) - eps * log sigma(-z)

    (cDPO's smoothing; SimPO applies it to its own margin).
    """
    return -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


# --------------------------------------------------------------------------------------------------
# preference losses


def dpo_sigmoid_loss(
    policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
    *, beta: float = 0.1, label_smoothing: float = 0.0,
) -> PreferenceLossOutput:  # fmt: skip
    """DPO (Rafailov et al. 2023), optionally conservative (cDPO, Mitchell 2023).

    DPO fits the Bradley-Terry model ``p(y_w > y_l) = sigma(r_w - r_l)`` with the implicit reward
    ``r = beta * log(pi / pi_ref)`` that solves the KL-regularised RL problem in closed form::

        losses = -log sigma(beta * h),    h = (pc - rc) - (pr - rr)

    cDPO assumes each preference label is flipped with probability ``eps = label_smoothing`` and
    minimises the cross entropy against the smoothed target ``1 - eps``::

        losses = -(1 - eps) * log sigma(beta * h) - eps * log sigma(-beta * h)

    Its gradient vanishes at ``sigma(beta * h) = 1 - eps`` instead of pushing ``h`` to infinity.
    ``eps`` must lie in ``[0, 1]`` (``eps > 0.5`` would learn the reverse preference). Since
    ``-log sigma(-x) = -log sigma(x) + x``, the cDPO loss equals
    ``-log sigma(beta * h) + eps * beta * h``.

    Rewards: ``beta * (pc - rc)`` and ``beta * (pr - rr)``, detached.
    """
    _check_label_smoothing(label_smoothing, upper=1.0, upper_open=False)
    h, rewards = _reference_margin(beta, policy_chosen_logps, policy_rejected_logps,
                                   reference_chosen_logps, reference_rejected_logps)  # fmt: skip
    losses = _smoothed_nll(beta * h, label_smoothing)
    return PreferenceLossOutput.of(losses, *rewards)


def ipo_loss(
    policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
    *, beta: float = 0.1, label_smoothing: float = 0.0,
) -> PreferenceLossOutput:  # fmt: skip
    """IPO (Azar et al. 2023, "A general theoretical paradigm...", the Psi = identity case).

    IPO regresses the log-ratio margin onto a fixed target instead of pushing it to infinity, so it
    keeps regularising towards the reference even when the preferences are deterministic::

        losses = (h - 1 / (2 * beta))^2,    h = (pc - rc) - (pr - rr)

    Here ``beta`` is the paper's ``tau`` (the KL strength): a smaller ``beta`` asks for a larger
    margin. Pass **length-averaged** log-probs (`sequence_logps` with ``average=True``) for all four
    inputs, as TRL does: with summed log-probs the margin grows with the response length and the
    fixed target ``1 / (2 beta)`` has no common scale.

    ``label_smoothing`` is accepted only for the uniform signature and must be 0.

    Rewards: ``beta * (pc - rc)`` and ``beta * (pr - rr)``, detached.
    """
    _reject_label_smoothing(label_smoothing, "ipo_loss")
    h, rewards = _reference_margin(beta, policy_chosen_logps, policy_rejected_logps,
                                   reference_chosen_logps, reference_rejected_logps)  # fmt: skip
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return PreferenceLossOutput.of(losses, *rewards)


def hinge_loss(
    policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
    *, beta: float = 0.1, label_smoothing: float = 0.0,
) -> PreferenceLossOutput:  # fmt: skip
    """Hinge loss on the DPO margin (SLiC, Zhao et al. 2023; the "hinge" variant of RSO/TRL).

    ::

        losses = max(0, 1 - beta * h),    h = (pc - rc) - (pr - rr)

    Pairs whose scaled margin already exceeds 1 contribute nothing (zero gradient); ``1 / beta`` is
    the required log-ratio margin.

    ``label_smoothing`` is accepted only for the uniform signature and must be 0.

    Rewards: ``beta * (pc - rc)`` and ``beta * (pr - rr)``, detached.
    """
    _reject_label_smoothing(label_smoothing, "hinge_loss")
    h, rewards = _reference_margin(beta, policy_chosen_logps, policy_rejected_logps,
                                   reference_chosen_logps, reference_rejected_logps)  # fmt: skip
    losses = torch.relu(1.0 - beta * h)
    return PreferenceLossOutput.of(losses, *rewards)


def robust_dpo_loss(
    policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
    *, beta: float = 0.1, label_smoothing: float = 0.0,
) -> PreferenceLossOutput:  # fmt: skip
    """Robust DPO (Chowdhury et al. 2024, "Provably robust DPO"): unbiased under label noise.

    If each label is flipped with known probability ``eps = label_smoothing``, the observed loss
    ``l(h)`` of a pair is ``(1 - eps) l(h) + eps l(-h)`` in expectation. Solving for the clean loss
    gives an unbiased estimate of it from noisy labels::

        losses = ((1 - eps) * (-log sigma(beta h)) - eps * (-log sigma(-beta h))) / (1 - 2 eps)

    with ``h = (pc - rc) - (pr - rr)``. Unlike cDPO the loss is not bounded below for ``eps > 0``
    (it is ``-log sigma(beta h) - eps beta h / (1 - 2 eps)``), which is the price of unbiasedness.
    ``eps = 0`` is plain DPO; ``eps`` must lie in ``[0, 0.5)`` (at 0.5 the labels carry no
    information and the denominator vanishes). The default 0 keeps the shared signature; set the
    assumed noise rate in the config.

    Rewards: ``beta * (pc - rc)`` and ``beta * (pr - rr)``, detached.
    """
    _check_label_smoothing(label_smoothing, upper=0.5, upper_open=True)
    h, rewards = _reference_margin(beta, policy_chosen_logps, policy_rejected_logps,
                                   reference_chosen_logps, reference_rejected_logps)  # fmt: skip
    eps = label_smoothing
    losses = ((1.0 - eps) * -F.logsigmoid(beta * h) - eps * -F.logsigmoid(-beta * h)) / (
        1.0 - 2.0 * eps
    )
    return PreferenceLossOutput.of(losses, *rewards)


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor | None = None,
    reference_rejected_logps: torch.Tensor | None = None,
    *,
    beta: float = 2.0,
    label_smoothing: float = 0.0,
    gamma: float = 0.5,
) -> PreferenceLossOutput:
    """SimPO (Meng et al. 2024): reference-free, length-normalised reward with a target margin.

    The reward is the policy's **average** token log-prob, scaled by ``beta``; the Bradley-Terry
    margin must exceed ``gamma``::

        losses = -log sigma(beta * (pc - pr) - gamma)

    where ``pc, pr`` are length-averaged (`sequence_logps` with ``average=True``; with summed
    log-probs this is not SimPO). ``gamma`` is the **absolute** margin (the paper's gamma, TRL's
    ``simpo_gamma``), not the ``gamma / beta`` ratio of the paper's later configs; the defaults
    ``beta = 2.0, gamma = 0.5`` are TRL's. ``label_smoothing = eps`` applies the cDPO smoothing as
    in the reference implementation::

        losses = -(1 - eps) log sigma(z) - eps log sigma(-z),    z = beta * (pc - pr) - gamma

    The reference arguments are accepted (and may be None) only to keep the shared signature; they
    are ignored, so no reference model needs to run.

    Rewards: ``beta * pc`` and ``beta * pr``, detached.
    """
    del reference_chosen_logps, reference_rejected_logps  # reference-free by construction
    check_number("beta", beta, positive=True)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite, got {gamma!r}")
    _check_label_smoothing(label_smoothing, upper=1.0, upper_open=False)
    check_logps(
        policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps
    )
    z = beta * (policy_chosen_logps - policy_rejected_logps) - gamma
    losses = _smoothed_nll(z, label_smoothing)
    rewards = (beta * policy_chosen_logps.detach(), beta * policy_rejected_logps.detach())
    return PreferenceLossOutput.of(losses, *rewards)


# --------------------------------------------------------------------------------------------------
# combinations and metrics


def preference_plus_sft(
    pref: PreferenceLossOutput, sft_nll: torch.Tensor, weight: float
) -> torch.Tensor:
    """Preference loss plus a weighted NLL term on the chosen responses (RPO)::

        L = L_pref + weight * mean_i NLL_i(chosen)

    RPO (Pang et al. 2024, "Iterative reasoning preference optimization"; TRL's ``rpo_alpha``) adds
    the chosen response's NLL so that the DPO objective cannot lower the chosen likelihood while
    widening the margin. ``sft_nll`` is either ``(B,)`` per-pair NLLs or an already reduced scalar;
    pass the length-normalised NLL, e.g. ``-sequence_logps(chosen_logits, chosen_labels,
    average=True)[0]`` or `sft_loss` on the chosen half of the batch. ``weight`` must be >= 0;
    ``weight = 0`` returns ``pref.loss`` unchanged (the NLL is not even read, so a NaN there cannot
    leak in).
    """
    check_number("weight", weight, positive=False)
    if not isinstance(sft_nll, torch.Tensor):
        raise TypeError(f"sft_nll must be a torch.Tensor, got {type(sft_nll).__name__}")
    if sft_nll.ndim > 1 or (sft_nll.ndim == 1 and sft_nll.shape != pref.losses.shape):
        raise ValueError(
            f"sft_nll must be a scalar or have the batch shape {tuple(pref.losses.shape)}, "
            f"got shape {tuple(sft_nll.shape)}"
        )
    if weight == 0:
        return pref.loss
    return pref.loss + weight * sft_nll.mean()


@torch.no_grad()
def preference_metrics(out: PreferenceLossOutput) -> dict[str, torch.Tensor]:
    """Batch means of the implicit rewards, in the names TRL and torchtune log.

    - ``rewards/chosen``: mean chosen reward;
    - ``rewards/rejected``: mean rejected reward;
    - ``rewards/margins``: mean of ``chosen - rejected``;
    - ``rewards/accuracies``: share of pairs with ``chosen > rejected`` (ties count as wrong).

    Every value is a detached float scalar tensor, ready for ``LightningModule.log_dict``.
    """
    chosen = out.chosen_rewards.detach().float()
    rejected = out.rejected_rewards.detach().float()
    return {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected.mean(),
        "rewards/margins": (chosen - rejected).mean(),
        "rewards/accuracies": (chosen > rejected).float().mean(),
    }
