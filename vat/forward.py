"""The forward layer the training modules and the probes share: how text becomes token ids for a
causal LM, and when and how several sequences run packed in one row under a custom attention mask.

- `encode_pair`, `single_token_ids`: tokenisation, the way lm-evaluation-harness does it.
- `packed_attention`: the one rule for whether a model runs packed sequences under a ready 4-D
  attention mask exactly as it would run them alone (the DPO pair forward and the probes' scorer
  both ask it), and `attention_bias`, that mask in the form the attention implementation takes.
- `pair_logps`: the preference-pair forward of DPO (prompt + chosen + rejected in one row).

This is the low layer: it imports nothing from `vat.data`, `vat.probes` or `vat.modules`, which
all build on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vat.losses.tokens import sequence_logps

# Model types whose decoder takes explicit position ids and a ready 4-D attention mask and applies
# it as given (no model-specific mask of its own: no sliding-window or chunked layers, no
# bidirectional spans), and whose logits are exactly ``lm_head(backbone(...))`` (no logit scale
# or softcapping; `pair_logps` runs the two itself). Others run unpacked.
PACKABLE_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
# Attention implementations that apply whatever mask they are given: a 2-D padding mask with
# holes (padding inside a row, as after a left-padded cached prefix) or a ready 4-D mask. Flash
# attention assumes contiguous padding and takes no 4-D mask.
MASKED_ATTENTION = ("sdpa", "eager")


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) the way lm-evaluation-harness splits them
    (`HFLM._encode_pair`): trailing spaces of the context move to the continuation, and the
    continuation is ``encode(context + continuation)`` minus the context's tokens."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    ctx = tokenizer.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx) :]


def single_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The token id of each option label; every label must be exactly one token."""
    ids = []
    for label in labels:
        enc = tokenizer.encode(label, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(
                f"option label {label!r} is {len(enc)} tokens under this tokenizer ({enc}); "
                "judgment options must be single tokens (use digits or letters)"
            )
        ids.append(enc[0])
    return ids


# ------------------------------------------------------------------------------ attention masks
def base_model(model):
    """The Hugging Face model under a PEFT wrapper (the model itself when not wrapped)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def attention_implementation(model) -> str | None:
    """The model's attention implementation ("sdpa", "eager", "flash_attention_2", ...)."""
    return getattr(getattr(base_model(model), "config", None), "_attn_implementation", None)


def applies_any_mask(model) -> bool:
    """Whether the model's attention applies any mask it is given (`MASKED_ATTENTION`)."""
    return attention_implementation(model) in MASKED_ATTENTION


def packed_attention(model, length: int) -> str | None:
    """The attention implementation ("sdpa" or "eager") when `model` runs sequences of up to
    `length` tokens packed under a custom 4-D attention mask exactly as it would run them alone;
    None when it cannot (another model type or attention implementation, or a sliding window
    shorter than `length` that the custom mask would not apply).

    The one rule for packing: the DPO pair forward (`pair_logps`) and the probes' scorer
    (`vat.probes.scoring`) both follow it."""
    cfg = getattr(base_model(model), "config", None)
    if getattr(cfg, "model_type", None) not in PACKABLE_MODEL_TYPES or not applies_any_mask(model):
        return None
    window = getattr(cfg, "sliding_window", None)
    if window and getattr(cfg, "use_sliding_window", True) and length > window:
        return None  # SDPA and eager attention apply the mask given, not the model's window
    return attention_implementation(model)


def attention_bias(keep: torch.Tensor, impl: str, dtype: torch.dtype) -> torch.Tensor:
    """The boolean 4-D mask `keep` (True = attend) as attention implementation `impl` takes it:
    as is for SDPA; for eager attention, which adds the mask to the scores, 0 where kept and the
    most negative `dtype` value elsewhere."""
    if impl == "sdpa":
        return keep
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(
        ~keep, torch.finfo(dtype).min
    )


# ------------------------------------------------------------------------- preference pairs
def _backbone_and_head(model):
    """(decoder backbone, LM head) of `model`, or None when it does not split into the two."""
    base = base_model(model)
    backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
    head = base.get_output_embeddings()
    if backbone is None or backbone is base or head is None:
        return None
    return backbone, head


def packed_attention_mask(segment: torch.Tensor, impl: str, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, T, T) mask for packed pairs (`vat.data.collate.pack_pairs`): causal, no padding keys,
    and a rejected token never sees a chosen one. Padding queries see themselves only (no empty
    softmax row, so no NaN). Boolean (True = attend) for SDPA, additive float for eager."""
    t = segment.shape[1]
    q, k = segment[:, :, None], segment[:, None, :]
    causal = torch.ones(t, t, dtype=torch.bool, device=segment.device).tril()
    keep = causal & (k >= 0) & ~((q == 2) & (k == 1))
    keep |= torch.eye(t, dtype=torch.bool, device=segment.device)
    return attention_bias(keep[:, None], impl, dtype)


def pair_logps(model, batch, share_prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed response log-probs (2B,) float32 and response token counts (2B,) of a preference
    batch (`PreferenceCollator`): chosen rows first, then rejected.

    Packed (``share_prompt``, the batch has ``packed_*`` fields and `packed_attention` allows it):
    one pass over ``prompt + chosen + rejected`` per pair, so the prompt runs once instead of
    twice, and the LM head and its log-softmax run only on the response tokens (not on the prompt,
    nor on padding), gathered by the host-built target indices (no host sync). Otherwise the plain
    (2B, L) forward and `sequence_logps` over the full logits. Both give the same numbers (up to
    float rounding): the rejected tokens see the prompt at the same positions, and never the
    chosen response.
    """
    packed = share_prompt and "packed_input_ids" in batch
    impl = packed_attention(model, batch["packed_input_ids"].shape[1]) if packed else None
    parts = _backbone_and_head(model) if impl is not None else None
    if parts is None:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return sequence_logps(logits, batch["labels"], average=False)
    backbone, head = parts
    mask = packed_attention_mask(batch["packed_segment"], impl, head.weight.dtype)
    hidden = backbone(
        input_ids=batch["packed_input_ids"],
        attention_mask=mask,
        position_ids=batch["packed_position_ids"],
        use_cache=False,
    ).last_hidden_state
    logits = head(hidden[batch["target_row"], batch["target_pos"]])  # (N, V): responses only
    targets = batch["target_ids"]
    token = logits.gather(-1, targets[:, None])[:, 0].float() - torch.logsumexp(logits.float(), -1)
    grid = batch["response_mask"]
    total = token.new_zeros(grid.numel()).scatter(0, batch["target_slot"], token)
    return total.view(grid.shape).sum(-1), grid.sum(-1)
