"""Training losses: token log-probs, SFT cross entropy and the DPO family of preference losses.

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

__all__ = [
    "IGNORE_INDEX",
    "PreferenceLossOutput",
    "dpo_sigmoid_loss",
    "hinge_loss",
    "ipo_loss",
    "preference_metrics",
    "preference_plus_sft",
    "robust_dpo_loss",
    "sequence_logps",
    "sft_loss",
    "simpo_loss",
]

# The label value that PyTorch's cross entropy and Hugging Face collators use for "no target".
IGNORE_INDEX = -100


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


# --------------------------------------------------------------------------------------------------
# validation


def _check_beta(beta: float) -> None:
    # `not beta > 0` also rejects NaN, which `beta <= 0` would let through.
    if not (
        isinstance(beta, Real) and not isinstance(beta, bool) and beta > 0 and math.isfinite(beta)
    ):
        raise ValueError(f"beta must be a finite number > 0, got {beta!r}")


def _check_logps(**tensors: torch.Tensor) -> None:
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


def _check_pair(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
) -> None:
    _check_beta(beta)
    _check_logps(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        reference_chosen_logps=reference_chosen_logps,
        reference_rejected_logps=reference_rejected_logps,
    )


def _reference_margin(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``h = (pc - rc) - (pr - rr)`` and the detached rewards ``beta (pc - rc)``, ``beta (pr - rr)``

    All three are ``(B,)``; ``h`` keeps its graph, the rewards are for logging. Validates the
    inputs (shapes, beta) first, so every reference-based loss checks them in one place.
    """
    _check_pair(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
    )
    chosen_logratios = policy_chosen_logps - reference_chosen_logps
    rejected_logratios = policy_rejected_logps - reference_rejected_logps
    h = chosen_logratios - rejected_logratios
    return h, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


# --------------------------------------------------------------------------------------------------
# token log-probs and SFT


def _check_lm_inputs(logits: torch.Tensor, labels: torch.Tensor) -> None:
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
    _check_lm_inputs(logits, labels)
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


def sft_loss(
    logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Token-mean cross entropy of ``labels`` under ``logits``, prompt and padding masked out.

    Same shapes and causal shift as `sequence_logps`: ``logits`` ``(B, T, V)``, ``labels``
    ``(B, T)``, and ``logits[:, t]`` predicts ``y_bt = labels[:, t + 1]``. With ``N`` the number
    of labelled tokens in the whole batch::

        L = -(1 / N) * sum_{b, t : y_bt != ignore_index} log_softmax(logits[b, t])[y_bt]

    i.e. ``F.cross_entropy`` on the shifted tokens with ``ignore_index``: every labelled token of
    the batch weighs the same (long answers weigh more than short ones, as in standard SFT).

    One difference from ``F.cross_entropy(reduction="mean")``: a batch with no labelled token
    (e.g. every answer truncated away) gives 0 with a zero gradient instead of NaN, so one bad
    batch cannot poison the weights. The logits are upcast to float32 for the softmax.

    Returns a scalar float32 tensor.
    """
    _check_lm_inputs(logits, labels)
    vocab = logits.shape[-1]
    shifted_logits = logits[:, :-1, :].reshape(-1, vocab).float()
    targets = labels[:, 1:].reshape(-1)
    total = F.cross_entropy(shifted_logits, targets, ignore_index=ignore_index, reduction="sum")
    n_tokens = (targets != ignore_index).sum()
    return total / n_tokens.clamp(min=1).to(total.dtype)


# --------------------------------------------------------------------------------------------------
# preference losses


def dpo_sigmoid_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
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
    h, chosen_rewards, rejected_rewards = _reference_margin(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
    )
    eps = label_smoothing
    losses = -(1.0 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    return PreferenceLossOutput(losses.mean(), losses, chosen_rewards, rejected_rewards)


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
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
    h, chosen_rewards, rejected_rewards = _reference_margin(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
    )
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return PreferenceLossOutput(losses.mean(), losses, chosen_rewards, rejected_rewards)


def hinge_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
    """Hinge loss on the DPO margin (SLiC, Zhao et al. 2023; the "hinge" variant of RSO/TRL).

    ::

        losses = max(0, 1 - beta * h),    h = (pc - rc) - (pr - rr)

    Pairs whose scaled margin already exceeds 1 contribute nothing (zero gradient); ``1 / beta`` is
    the required log-ratio margin.

    ``label_smoothing`` is accepted only for the uniform signature and must be 0.

    Rewards: ``beta * (pc - rc)`` and ``beta * (pr - rr)``, detached.
    """
    _reject_label_smoothing(label_smoothing, "hinge_loss")
    h, chosen_rewards, rejected_rewards = _reference_margin(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
    )
    losses = torch.relu(1.0 - beta * h)
    return PreferenceLossOutput(losses.mean(), losses, chosen_rewards, rejected_rewards)


def robust_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    reference_chosen_logps: torch.Tensor,
    reference_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> PreferenceLossOutput:
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
    h, chosen_rewards, rejected_rewards = _reference_margin(
        policy_chosen_logps,
        policy_rejected_logps,
        reference_chosen_logps,
        reference_rejected_logps,
        beta,
    )
    eps = label_smoothing
    losses = ((1.0 - eps) * -F.logsigmoid(beta * h) - eps * -F.logsigmoid(-beta * h)) / (
        1.0 - 2.0 * eps
    )
    return PreferenceLossOutput(losses.mean(), losses, chosen_rewards, rejected_rewards)


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
    _check_beta(beta)
    if not math.isfinite(gamma):
        raise ValueError(f"gamma must be finite, got {gamma!r}")
    _check_label_smoothing(label_smoothing, upper=1.0, upper_open=False)
    _check_logps(
        policy_chosen_logps=policy_chosen_logps, policy_rejected_logps=policy_rejected_logps
    )
    z = beta * (policy_chosen_logps - policy_rejected_logps) - gamma
    eps = label_smoothing
    losses = -(1.0 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)
    chosen_rewards = beta * policy_chosen_logps.detach()
    rejected_rewards = beta * policy_rejected_logps.detach()
    return PreferenceLossOutput(losses.mean(), losses, chosen_rewards, rejected_rewards)


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
    if not (
        isinstance(weight, Real)
        and not isinstance(weight, bool)
        and weight >= 0
        and math.isfinite(weight)
    ):
        raise ValueError(f"weight must be a finite number >= 0, got {weight!r}")
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
