"""Causal LMs and tokenizers: Hub models, the offline tiny Llama, the offline SmolLM2."""

from vat.models.loading import (
    LoraSpec,
    ModelSpec,
    apply_lora,
    as_spec,
    load,
    load_model,
    load_tokenizer,
)

__all__ = ["LoraSpec", "ModelSpec", "apply_lora", "as_spec", "load", "load_model", "load_tokenizer"]
