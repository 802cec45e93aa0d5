"""`SFTModule`: supervised fine-tuning on the express actions of the target value.

Cross-entropy on the response tokens only (the prompt is masked with -100 by the collator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import lightning as L

from vat.losses import sft_loss
from vat.modules.common import build_policy, log_throughput, optimizers, plain


class SFTModule(L.LightningModule):
    def __init__(self, model: Any, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        model = plain(model)  # checkpoints hold builtins only (weights_only loading)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.model_cfg = model
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.model = None
        self._t_last = None

    def configure_model(self) -> None:
        if self.model is None:
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
        self._t_last = time.perf_counter()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        log_throughput(self, batch, self._t_last)
