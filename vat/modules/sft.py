"""`SFTModule`: supervised fine-tuning on the express actions of the target value.

Cross-entropy on the response tokens only (the prompt is masked with -100 by the collator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vat.losses import sft_loss
from vat.modules.common import (
    PolicyModule,
    plain,
)


class SFTModule(PolicyModule):
    def __init__(self, model: Any, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__(model, optimizer, scheduler)
        model = plain(model)  # the hyperparameters hold the builtins-only config
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])

    def _step(self, batch, stage: str):
        logits = self.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).logits
        loss = sft_loss(logits, batch["labels"])
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step)
        return loss
