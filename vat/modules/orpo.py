"""`ORPOModule`: odds ratio preference optimisation toward one value (Hong et al. 2024).

SFT on the chosen (express) responses plus ``lam`` times a Bradley-Terry penalty on the log odds
ratio of chosen over rejected (suppress), in one stage and with no reference model: the loss is
`vat.losses.orpo_loss`, a `_partial_` config node (``method.module.loss``).

It trains on the same preference batches as `DPOModule` (`PreferenceCollator`) and scores them the
same way: `pair_logps` runs each pair as one row ``prompt + chosen + rejected`` when the model can
take the packing mask (``share_prompt``), else the (2B, L) batch of two full sequences per pair;
both give the summed log-probs and token counts the loss reads. Logged as DPO logs: ``train/loss``,
``rewards/*`` (of the log odds) and ``logps/*`` on the training step, plus ``nll_loss`` and
``odds_ratio_loss``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vat.forward import pair_logps
from vat.losses.orpo import orpo_metrics
from vat.modules.common import PolicyModule, plain


def metric_name(key: str, stage: str) -> str:
    """DPO's log names: the bare key on the training step; ``<stage>/<key>`` for the other stages,
    except ``logps/<x>_<stage>`` (the log-prob panel keeps every stage)."""
    if stage == "train":
        return key
    return f"{key}_{stage}" if key.startswith("logps/") else f"{stage}/{key}"


class ORPOModule(PolicyModule):
    def __init__(
        self,
        model: Any,
        loss: Callable,
        optimizer: Callable,
        scheduler: Callable | None = None,
        *,
        share_prompt: bool,  # default in conf/method/orpo.yaml
    ):
        super().__init__(model, optimizer, scheduler)
        model = plain(model)  # the hyperparameters hold the builtins-only config
        self.save_hyperparameters(ignore=["loss", "optimizer", "scheduler"])
        self.loss_fn = loss
        self.share_prompt = share_prompt  # one pass over prompt + chosen + rejected: pair_logps

    def _step(self, batch, stage: str):
        if "is_anchor" in batch:  # anchor pairs would be trained on as if they were target pairs
            raise ValueError(
                "ORPO takes no anchor pairs (tax-aware DPO only): set "
                "method.datamodule.anchor_per_pair=0"
            )
        total, n = pair_logps(self.model, batch, share_prompt=self.share_prompt)
        b = total.shape[0] // 2  # chosen rows first, then rejected
        out = self.loss_fn(total[:b], total[b:], n[:b], n[b:])
        on_step = stage == "train"
        self.log(f"{stage}/loss", out.loss, prog_bar=True, on_step=on_step, on_epoch=not on_step)
        metrics = {metric_name(k, stage): v for k, v in orpo_metrics(out).items()}
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step)
        return out.loss
