"""Pieces both LightningModules share (functions, not a base class)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from vat.models import as_spec, load_model

log = logging.getLogger(__name__)


def build_policy(model_cfg: Any):
    """The trainable HF model: base weights plus LoRA adapters when the config asks for them."""
    model = load_model(as_spec(model_cfg), with_lora=True)
    model.train()
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    log.info(
        "policy: %d trainable of %d parameters (%.2f%%)", n_train, n_all, 100 * n_train / n_all
    )
    return model


def plain(cfg: Any) -> Any:
    """A config node as builtins, so checkpoints load with ``torch.load(weights_only=True)``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def is_peft(model) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


def freeze(model):
    """Eval mode, no gradients: a reference that cannot move (checked by tests)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def tokens_per_batch(batch: dict) -> int:
    return int(batch["attention_mask"].sum())


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters (LoRA targets matched nothing?)")
    return params


def optimizers(optimizer_fn, scheduler_fn, model) -> Any:
    """`configure_optimizers` for both modules: the `_partial_` optimizer over the trainable
    parameters, and the `_partial_` scheduler (if any) stepped every optimizer step."""
    opt = optimizer_fn(params=trainable_parameters(model))
    if scheduler_fn is None:
        return opt
    return {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": scheduler_fn(optimizer=opt), "interval": "step"},
    }


def log_throughput(module, batch, t_start: float) -> None:
    """Tokens per second of one batch's forward, backward and optimizer step (evaluation excluded)."""
    import time

    module.log(
        "perf/tokens_per_s", tokens_per_batch(batch) / (time.perf_counter() - t_start), on_step=True
    )
