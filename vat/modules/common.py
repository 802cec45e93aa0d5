"""Pieces both LightningModules share: `PolicyModule` (the Lightning hooks) and helper functions."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import torch

from vat.models import as_spec, load_model
from vat.models.loading import apply_lora, import_model_class

log = logging.getLogger(__name__)


def build_policy(model_cfg: Any):
    """The trainable HF model: base weights plus LoRA adapters when the config asks for them."""
    spec = as_spec(model_cfg)
    model = load_model(spec, with_lora=False)
    if spec.lora is not None:
        # The run's seed alone fixes the adapters' init, however much randomness loading used
        # (plain, DDP and ZeRO-3 loading differ), so runs under every strategy start alike.
        torch.manual_seed(torch.initial_seed())
        with outside_zero_init():
            model = apply_lora(model, spec.lora)
    model.train()
    n_train = sum(_numel(p) for p in model.parameters() if p.requires_grad)
    n_all = sum(_numel(p) for p in model.parameters())
    log.info(
        "policy: %d trainable of %d parameters (%.2f%%)", n_train, n_all, 100 * n_train / n_all
    )
    return model


@contextlib.contextmanager
def outside_zero_init() -> Iterator[None]:
    """Create tensors whole even inside DeepSpeed ZeRO-3's `zero.Init` (a no-op elsewhere).

    For LoRA adapters: PEFT initialising already partitioned (empty) weights does nothing, so lora_B
    would keep a random init instead of zeros. Whole adapters are partitioned when the engine starts.
    """
    zero_init = sys.modules.get("deepspeed.runtime.zero.partition_parameters")
    active = zero_init is not None and zero_init.top_level_context is not None
    if active:
        zero_init.shutdown_init_context()
    try:
        yield
    finally:
        if active:
            zero_init.restore_init_context()


def _numel(p: torch.nn.Parameter) -> int:
    return getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitioned parameters are empty locally


def zero_stage(module) -> int:
    """The DeepSpeed ZeRO stage the module trains under (0: not DeepSpeed, or not attached)."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    strategy = module._trainer.strategy if module._trainer is not None else None
    if not isinstance(strategy, DeepSpeedStrategy):
        return 0
    return int((strategy.config or {}).get("zero_optimization", {}).get("stage", 0))


def hf_zero3_config(module):
    """Under ZeRO-3, the `HfDeepSpeedConfig` transformers must see while it builds a model in
    `configure_model` (inside DeepSpeed's `zero.Init`): `from_pretrained` then loads the checkpoint
    into the partitioned parameters; without it loading fails (transformers 5.24: IndexError) or
    leaves wrong weights. transformers holds only a weak reference: keep the returned object alive
    while models are built or run under ZeRO-3 (generate() reads it too). None otherwise."""
    if zero_stage(module) != 3:
        return None
    from transformers.integrations import HfDeepSpeedConfig

    return HfDeepSpeedConfig(module.trainer.strategy.config)


def plain(cfg: Any) -> Any:
    """A config node as builtins, so checkpoints load with ``torch.load(weights_only=True)``."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)  # choices as str
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
    # positional: torch optimizers call it params, DeepSpeedCPUAdam model_params
    opt = optimizer_fn(trainable_parameters(model))
    if scheduler_fn is None:
        return opt
    return {
        "optimizer": opt,
        "lr_scheduler": {"scheduler": scheduler_fn(optimizer=opt), "interval": "step"},
    }


def throughput_start(module, batch) -> None:
    """At each training batch's start: open the timing window (first micro-batch of a step) and
    count the batch's tokens."""
    import time

    if getattr(module, "_t_last", None) is None:
        module._t_last, module._tokens = time.perf_counter(), 0
    module._tokens += tokens_per_batch(batch)


def throughput_end(module) -> None:
    """After the optimizer step: log ``perf/tokens_per_s`` (this rank) over the step's micro-batches.

    Called from ``optimizer_step``, i.e. before the batch-end callbacks: the VAT evaluation and
    checkpoint writes (which run in ``on_train_batch_end``) are not counted as training time.
    """
    import time

    if getattr(module, "_t_last", None) is None:
        return
    module.log("perf/tokens_per_s", module._tokens / (time.perf_counter() - module._t_last),
               on_step=True)  # fmt: skip
    module._t_last = None


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or inf: the run stops before the bad step updates anything."""


def check_finite(module, loss: torch.Tensor, batch_idx: int) -> None:
    """Stop the run at the first NaN/inf loss, before its backward pass, naming the step.

    All ranks decide together (a rank raising alone would leave the others waiting in the next
    collective). No checkpoint is written after the bad step, so the last one is the last good
    state. One host sync per micro-batch: the loss is logged every step anyway.
    """
    finite = bool(torch.isfinite(loss.detach()).all())
    trainer = module._trainer
    if trainer is not None and trainer.world_size > 1:
        finite = trainer.strategy.reduce_boolean_decision(finite, all=True)
    if finite:
        return
    step = module.global_step
    ckpt = getattr(trainer, "checkpoint_callback", None) if trainer is not None else None
    last = getattr(ckpt, "last_model_path", "") or None
    if last is None and getattr(ckpt, "dirpath", None):  # resumed, nothing written yet this run
        last = next((str(p) for p in [Path(ckpt.dirpath) / "last.ckpt"] if p.exists()), None)
    raise NonFiniteLossError(
        f"training loss is {loss.detach().float().cpu().tolist()} (not finite) at optimizer step "
        f"{step}, micro-batch {batch_idx} of epoch {module.current_epoch}: stopped before this "
        f"step updated the weights. Last good checkpoint: {last or 'none written yet'}. Lower the "
        "learning rate (method.module.optimizer.lr), keep gradient clipping on "
        "(trainer.gradient_clip_val), or use trainer.precision=32-true / bf16 instead of fp16."
    )


class PolicyModule(L.LightningModule):
    """What every training method's LightningModule shares: the policy built in `configure_model`
    from ``model_cfg``, the optimizer and scheduler partials, and the Lightning hooks. A subclass
    calls ``super().__init__(model, optimizer, scheduler)`` (then its own `save_hyperparameters`,
    with the builtins-only model config), defines ``_step(batch, stage)`` and may extend
    `on_policy_built`."""

    def __init__(self, model: Any, optimizer, scheduler=None) -> None:
        super().__init__()
        self.model_cfg = plain(model)  # checkpoints hold builtins only (weights_only loading)
        self.optimizer_fn = optimizer
        self.scheduler_fn = scheduler
        self.model = None
        self.hf_zero3 = None

    def configure_model(self) -> None:
        """Built here, not in __init__, so sharded strategies can partition it at creation."""
        if self.model is None:
            self.hf_zero3 = hf_zero3_config(self)  # ZeRO-3: kept alive for transformers (weak ref)
            self.model = build_policy(self.model_cfg)
            self.on_policy_built()

    def on_policy_built(self) -> None:
        """After the policy exists (DPO: its reference's setup)."""

    def setup(self, stage: str) -> None:
        # Lightning calls setup before it enters DeepSpeed's zero.Init for `configure_model`.
        if self.model is None and zero_stage(self) == 3:
            import_model_class(as_spec(self.model_cfg))

    def training_step(self, batch, batch_idx):
        loss = self._step(batch, "train")
        check_finite(self, loss, batch_idx)
        return loss

    def validation_step(self, batch, batch_idx):
        return self._step(batch, "val")

    def configure_optimizers(self):
        return optimizers(self.optimizer_fn, self.scheduler_fn, self.model)

    def on_train_batch_start(self, batch, batch_idx) -> None:
        throughput_start(self, batch)
        sampler = getattr(self.trainer.train_dataloader, "sampler", None)
        if hasattr(sampler, "consumed"):  # the loader's position, saved in checkpoints
            sampler.consumed += len(batch["index"] if "index" in batch else batch["input_ids"])

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        throughput_end(self)
