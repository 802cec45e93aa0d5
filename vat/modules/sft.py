"""`SFTModule`: supervised fine-tuning on the express actions of the target value.

Cross-entropy on the response tokens only (the prompt is masked with -100 by the collator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L

from vat.losses import sft_loss
from vat.modules.common import (
    build_policy,
    hf_zero3_config,
    optimizers,
    plain,
    throughput_end,
    throughput_start,
)


class SFTModule(L.LightningModule):
    def __init__(self, model: Any, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        model = plain(model)  # checkpoints hold builtins only (weights_only loading)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.model_cfg = model
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.model = None
        self.hf_zero3 = None
        self._t_last = None

    def configure_model(self) -> None:
        if self.model is None:
            self.hf_zero3 = hf_zero3_config(self)  # ZeRO-3: kept alive for transformers (weak ref)
            self.model = build_policy(self.model_cfg)

    def _step(self, batch, stage: str):
        logits = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
        loss = sft_loss(logits, batch["labels"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return optimizers(self.optimizer_fn, self.scheduler_fn, self.model)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        throughput_start(self, batch)

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        throughput_end(self)
