"""What the scorer asks of a transformers model that differs between transformers versions and
model classes: whether it takes ``logits_to_keep`` (and a boolean one), what its KV-cache argument
is called and where its output holds the cache, how to repeat a cached prefix across a batch, and
its hidden size. PEFT-wrapped models are asked about the model under the wrapper."""

from __future__ import annotations

import copy
import functools
import inspect

import torch

from vat.forward import base_model


def supports_logits_to_keep(model) -> bool:
    return "logits_to_keep" in inspect.signature(base_model(model).forward).parameters


def one_logit(model) -> dict:
    """Forward kwargs that run the LM head on the last position only, when the model can."""
    return {"logits_to_keep": 1} if supports_logits_to_keep(model) else {}


@functools.cache
def bool_logits_to_keep() -> bool:
    """Whether this transformers takes a boolean (batch, length) ``logits_to_keep`` (>= 5.2x)."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    return "boolean" in (slice_logits_to_keep.__doc__ or "")


def hidden_size(model) -> int:
    return int(getattr(base_model(model).config, "hidden_size", 1024) or 1024)


def cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV-cache argument `cache`; earlier 5.x `past_key_values`."""
    params = inspect.signature(base_model(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def repeat_cache(cache, row: int, b: int):
    """A new KV cache: row `row` of `cache` repeated to batch b (the original stays reusable).
    Layers holding `keys` / `values` tensors (transformers 5) are indexed directly, into new
    tensors; anything else is deep-copied and then selected with transformers' own
    `batch_select_indices` (which works in place, so on a copy: slower, the whole cache copied)."""
    rows = torch.full((b,), row, dtype=torch.long)
    layers = getattr(cache, "layers", None)
    if layers is not None and all(hasattr(la, "keys") and hasattr(la, "values") for la in layers):
        c = copy.copy(cache)
        c.layers = [copy.copy(la) for la in layers]
        for la in c.layers:
            if isinstance(la.keys, torch.Tensor) and la.keys.numel():
                la.keys = la.keys.index_select(0, rows.to(la.keys.device))
                la.values = la.values.index_select(0, rows.to(la.values.device))
        return c
    c = copy.deepcopy(cache)
    c.batch_select_indices(rows)
    return c
