"""`DPOModule`: direct preference optimisation toward one value (express preferred to suppress).

One forward pass scores chosen and rejected together. By default (``share_prompt``) each pair runs
as one row ``prompt + chosen + rejected`` with a mask that hides the chosen tokens from the
rejected ones, so the shared prompt is computed once, and the LM head runs on response tokens only
(`pair_logps`); otherwise, and for models that cannot take such a mask, the collator's (2B, L)
batch of two full sequences per pair. The loss function is a `_partial_` config node (`vat.losses.dpo_sigmoid_loss`,
`ipo_loss`, `hinge_loss`, `robust_dpo_loss`, `simpo_loss`), so variants never appear as strings here.

The reference policy is a `vat.reference.Reference` (``reference``): `Precomputed` (cached
log-probs looked up by example index), `AdapterDisabled` (LoRA off) or `FrozenCopy`.

Tax-aware DPO (``method=dpo_anchored``): the batch also holds anchor pairs of the other values
(``is_anchor``); the loss is DPO on the target pairs plus ``anchor_weight`` x the ``anchor``
penalty on the anchors' margin shifts (`vat.anchor`), from the same forward.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from vat.anchor import anchored_loss, check_weight
from vat.forward import pair_logps
from vat.losses import preference_metrics, preference_plus_sft
from vat.modules.common import PolicyModule, plain
from vat.reference import Reference, resolve

log = logging.getLogger(__name__)


class DPOModule(PolicyModule):
    def __init__(
        self,
        model: Any,
        loss: Callable,
        optimizer: Callable,
        scheduler: Callable | None = None,
        *,
        reference: Reference | str,
        average_logps: bool,
        sft_weight: float,
        share_prompt: bool,
        anchor: Callable | None = None,
        anchor_weight: float = 0.0,
    ):
        # the settings' defaults live in conf/method/dpo.yaml; anchors in dpo_anchored.yaml
        super().__init__(model, optimizer, scheduler)
        model = plain(model)  # the hyperparameters hold the builtins-only config
        reference = resolve(reference)
        # checkpoints hold builtins only (weights_only loading): the reference by its name
        self.save_hyperparameters(ignore=["loss", "optimizer", "scheduler", "anchor", "reference"])
        self.hparams["reference"] = reference.name
        self.loss_fn = loss
        self.reference = reference
        self.average_logps = average_logps  # IPO and SimPO use per-token mean log-probs
        self.sft_weight = sft_weight
        self.share_prompt = share_prompt  # one pass over prompt + chosen + rejected: pair_logps
        # tax-aware DPO (`vat.anchor`): a penalty on the anchor pairs' margin shifts, weight lambda
        check_weight(anchor_weight)
        self.anchor_fn = anchor
        self.anchor_weight = anchor_weight
        self.ref_model = None
        # (N, 2) float64 tensor of reference (chosen, rejected) log-probs, by example index.
        self.reference_logps: torch.Tensor | None = None

    # ------------------------------------------------------------------ model
    def on_policy_built(self) -> None:
        self.reference.setup(self)  # checks it can run on this policy; frozen_copy builds its copy

    def set_reference_logps(self, logps: torch.Tensor) -> None:
        self.reference_logps = logps.detach().to(torch.float64).cpu()

    # ------------------------------------------------------------------ log-probs
    def concatenated_logps(self, model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(chosen, rejected) sequence log-probs from one forward over the batch, plus the chosen
        responses' per-token NLL (for the optional SFT term), from one log-softmax pass.

        The forward runs the pairs with their shared prompt once when it can (`pair_logps`),
        else the plain (2B, L) batch."""
        total, n = pair_logps(model, batch, share_prompt=self.share_prompt)
        mean = total / n.clamp(min=1)
        logps = mean if self.average_logps else total
        b = batch["input_ids"].shape[0] // 2
        return logps[:b], logps[b:], -mean[:b]

    @torch.no_grad()
    def reference_concatenated(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        return self.reference.logps(self, batch)

    # ------------------------------------------------------------------ steps
    def _step(self, batch, stage: str):
        pc, pr, nll = self.concatenated_logps(self.model, batch)
        rc, rr = self.reference_concatenated(batch)
        anchor = None
        if "is_anchor" in batch:  # tax-aware DPO: the anchor pairs follow the target pairs
            a = batch["is_anchor"]
            if self.anchor_fn is None:
                raise RuntimeError("the batch holds anchor pairs but method.module.anchor is null")
            anchor = self.anchor_fn(pc[a], pr[a], rc[a], rr[a], values=batch["pair_value"][a])
            t = ~a
            pc, pr, rc, rr, nll = pc[t], pr[t], rc[t], rr[t], nll[t]
        out = self.loss_fn(pc, pr, rc, rr)
        loss = anchored_loss(preference_plus_sft(out, nll, self.sft_weight), anchor,
                             self.anchor_weight)  # fmt: skip
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step)
        metrics = {
            f"{stage}/{k}" if stage != "train" else k: v for k, v in preference_metrics(out).items()
        }
        if anchor is not None and anchor.shifts.numel():
            name = "anchor" if on_step else f"{stage}/anchor"
            metrics.update({f"{name}/penalty": anchor.penalty.detach(),
                            f"{name}/shift_mean": anchor.shifts.mean(),
                            f"{name}/shift_abs": anchor.shifts.abs().mean()})  # fmt: skip
        metrics.update({f"logps/chosen{'' if on_step else '_' + stage}": pc.detach().mean(),
                        f"logps/rejected{'' if on_step else '_' + stage}": pr.detach().mean()})  # fmt: skip
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step)
        return loss
