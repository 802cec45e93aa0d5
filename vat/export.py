"""The trained policy out of the Trainer, whole, and written in Hugging Face format."""

from __future__ import annotations

from pathlib import Path

import lightning as L


def trained_policy(trainer: L.Trainer, module):
    """The trained HF model, whole and unsharded, on global rank 0 (None on the other ranks).

    Under ZeRO-3 each rank holds a shard of every weight: all ranks must call this, DeepSpeed gathers
    the full state dict onto rank 0 one layer at a time, and rank 0 loads it into a fresh copy of the
    policy built outside ZeRO-3. Otherwise the module's own model is already whole.
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy

    strategy = trainer.strategy
    if not (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3):
        return module.model if trainer.is_global_zero else None
    state = strategy.deepspeed_engine._zero3_consolidated_16bit_state_dict()  # collective
    module.hf_zero3 = None  # transformers' ZeRO-3 switch off: the copy below is a plain model
    if not trainer.is_global_zero:
        return None
    from vat.modules.common import build_policy

    policy = build_policy(module.model_cfg)
    prefix = "model."  # the policy's keys in the LightningModule's state dict
    policy.load_state_dict(
        {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    )
    return policy


def export_hf(model, tokenizer, out: Path) -> dict:
    """The final model in Hugging Face format: the adapter (LoRA) and the merged model."""
    paths = {}
    if hasattr(model, "peft_config"):
        model.save_pretrained(out / "hf_adapter")
        tokenizer.save_pretrained(out / "hf_adapter")
        paths["adapter"] = str(out / "hf_adapter")
        merged = model.merge_and_unload()
    else:
        merged = model
    merged.save_pretrained(out / "hf_model")
    tokenizer.save_pretrained(out / "hf_model")
    paths["model"] = str(out / "hf_model")
    return paths
