"""The DPO reference policy: where the reference log-probs of a pair come from.

``method.module.reference`` picks one (a ``_target_``, or its name as a string):

- `Precomputed` (``precomputed``, the default): the base model's log-probs of every training pair,
  computed once before training by `precompute` (cached on disk, keyed by model, pairs and
  averaging) and looked up by example index: no reference forward at all;
- `AdapterDisabled` (``adapter_disabled``): the policy with its LoRA adapters switched off (no
  extra memory; LoRA only);
- `FrozenCopy` (``frozen_copy``): a second copy of the base model, eval mode, no gradients
  (partitioned like the policy under ZeRO-3; whole on every GPU under ZeRO-1/2).

Every rule about a reference lives on its class: `check` is what preflight calls at compose time
and `setup` calls again when the module builds its model, so the two can never disagree. Also here:
`value_gap`, the check of the training pairs against the reference before training.
"""

from __future__ import annotations

import json
import logging
from typing import ClassVar

import numpy as np
import torch

log = logging.getLogger(__name__)


class Reference:
    """How `vat.modules.DPOModule` gets ``(chosen, rejected)`` reference log-probs of a batch."""

    name: ClassVar[str]
    precomputed: ClassVar[bool] = False  # True: train.py hands it the cached log-probs first

    def check(self, lora: bool) -> str | None:
        """The problem with using this reference on a model with (or without) LoRA, or None."""
        return None

    def setup(self, module) -> None:
        """When the module has built its policy (`configure_model`)."""
        from vat.modules.common import is_peft

        if (problem := self.check(lora=is_peft(module.model))) is not None:
            raise ValueError(problem)

    def logps(self, module, batch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Precomputed(Reference):
    name = "precomputed"
    precomputed = True

    def logps(self, module, batch):
        if module.reference_logps is None:
            raise RuntimeError("reference=precomputed but no reference log-probs were set")
        ref = module.reference_logps[batch["index"].cpu()].to(module.device, torch.float32)
        return ref[:, 0], ref[:, 1]


class AdapterDisabled(Reference):
    name = "adapter_disabled"

    def check(self, lora: bool) -> str | None:
        if lora:
            return None
        return ("method.module.reference=adapter_disabled with model.lora=null: the reference is "
                "the policy with its LoRA adapters switched off, so it needs LoRA; set model.lora "
                "(e.g. model.lora.r=16) or method.module.reference=precomputed (or frozen_copy)")  # fmt: skip

    @torch.no_grad()
    def logps(self, module, batch):
        with module.model.disable_adapter():
            rc, rr, _ = module.concatenated_logps(module.model, batch)
        return rc.detach(), rr.detach()


class FrozenCopy(Reference):
    name = "frozen_copy"

    def setup(self, module) -> None:
        from vat.models import as_spec, load_model
        from vat.modules.common import freeze, zero_stage

        if zero_stage(module) in (1, 2):
            log.warning(
                "method.module.reference=frozen_copy under DeepSpeed ZeRO-%d keeps a full copy of "
                "the model on every GPU: use reference=precomputed (no reference model at all) or "
                "ZeRO-3 (sharded copy)", zero_stage(module)
            )  # fmt: skip
        # A submodule of the LightningModule, so that ZeRO-3 partitions it like the policy.
        module.ref_model = freeze(load_model(as_spec(module.model_cfg), with_lora=False))

    @torch.no_grad()
    def logps(self, module, batch):
        rc, rr, _ = module.concatenated_logps(module.ref_model, batch)
        return rc, rr


REFERENCES: dict[str, type[Reference]] = {
    c.name: c for c in (AdapterDisabled, Precomputed, FrozenCopy)
}


def resolve(reference: Reference | str) -> Reference:
    """A `Reference` from itself or its name; the one error for anything else."""
    if isinstance(reference, Reference):
        return reference
    if isinstance(reference, str) and reference in REFERENCES:
        return REFERENCES[reference]()
    raise ValueError(
        f"method.module.reference={reference}: expected one of {', '.join(REFERENCES)} "
        "(or a _target_ of a vat.reference.Reference class)"
    )


@torch.no_grad()
def compute_logps(model, examples, collate, batch_size: int, average: bool,
                  share_prompt: bool = True) -> torch.Tensor:  # fmt: skip
    """(N, 2) float64 (chosen, rejected) log-probs of every pair under `model`, uncached, by the
    same forward as the training step (`vat.forward.pair_logps`)."""
    from torch.utils.data import DataLoader

    from vat.forward import pair_logps

    ref = torch.zeros(len(examples), 2, dtype=torch.float64)
    loader = DataLoader(examples, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        logps, n = pair_logps(model, batch, share_prompt=share_prompt)
        if average:
            logps = logps / n.clamp(min=1)
        b = len(batch["index"])
        ref[batch["index"], 0] = logps[:b].double()
        ref[batch["index"], 1] = logps[b:].double()
    return ref


def precompute(model_cfg, dataset, collate, batch_size: int, average: bool,
               share_prompt: bool = True) -> torch.Tensor:  # fmt: skip
    """(N, 2) reference log-probs (chosen, rejected) of every training pair, by dataset index
    (tax-aware DPO: the anchor pairs too, after the target's), under the base model (no adapters).

    Computed once and cached on disk, keyed by model, training pairs and averaging, so later runs
    and sweep cells reuse it; atomic and once per key even with several processes.
    """
    from vat.cache import build_once, cache_dir
    from vat.measure.cache import model_key
    from vat.models import as_spec, load_model
    from vat.probes.base import fingerprint

    scored = getattr(dataset, "scored_examples", dataset.examples)  # target pairs, then anchors
    pairs = [(ex["chosen_input_ids"], ex["rejected_input_ids"]) for ex in scored]
    target = cache_dir() / "reference" / fingerprint(model_key(model_cfg), pairs, average)
    with build_once(target) as tmp:
        if tmp is None:
            log.info("reference log-probs from cache: %s", target)
        else:
            model = load_model(as_spec(model_cfg), with_lora=False)
            ref = compute_logps(model, scored, collate, batch_size, average, share_prompt)
            torch.save(ref, tmp / "ref.pt")
    return torch.load(target / "ref.pt", weights_only=True)


def value_gap(ref: torch.Tensor) -> dict:
    """Do chosen and rejected actually differ under the reference? ("Value Drifts", Bhatia 2025).

    DPO moves a value only through pairs whose log-prob margin it can still change. We report the
    reference margin log p(chosen) - log p(rejected) over the training pairs and warn when the pairs
    are already separated (little left to learn) or indistinguishable.
    """
    m = (ref[:, 0] - ref[:, 1]).numpy()
    share = float((m > 0).mean())
    gap = {
        "n_pairs": len(m),
        "margin_mean": float(m.mean()),
        "margin_std": float(m.std()),
        "margin_p10": float(np.percentile(m, 10)),
        "margin_p90": float(np.percentile(m, 90)),
        "share_chosen_preferred": share,
        "warning": None,
    }
    if share > 0.9:
        gap["warning"] = (f"{share:.0%} of training pairs are already preferred the right way by the "
                          "reference: DPO has little left to learn on them")  # fmt: skip
    elif float(np.abs(m).max()) < 1e-3:
        gap["warning"] = "chosen and rejected are indistinguishable under the reference"
    log.info("value-gap check: %s", json.dumps(gap))
    if gap["warning"]:
        log.warning("value-gap check: %s", gap["warning"])
    return gap
