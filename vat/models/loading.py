"""Load any Hugging Face causal LM with its tokenizer, ready for batched scoring and training."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from hydra.utils import get_method

from vat.settings import Choice, Rule, Settings, number

log = logging.getLogger(__name__)


class DType(Choice):
    """The dtype the weights load in (``model.dtype``)."""

    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class PaddingSide(Choice):
    """Where the tokenizer pads a batch (``model.padding_side``)."""

    left = "left"
    right = "right"


# the torch dtype of each value model.dtype (and a probe's autocast_dtype) may take
TORCH_DTYPES = {d.value: getattr(torch, d.value) for d in DType}


@dataclass
class LoraSpec(Settings):
    """PEFT LoRA settings (see `peft.LoraConfig`); `target_modules="all-linear"` suits any model.

    These are the training defaults: conf/train.yaml turns LoRA on (``model.lora: {}``) and takes
    them from here; ``model.lora.r=8`` changes one, ``model.lora=null`` trains every weight."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: Any = "all-linear"

    RULES: ClassVar[dict[str, Rule]] = {
        "r": Rule(number(1, integer=True), "a rank >= 1"),
        "dropout": Rule(number(0, 1, hi_open=True), "a probability in [0, 1)"),
    }


@dataclass
class ModelSpec(Settings):
    """How to obtain a model: a Hub id or local path, or a local builder for offline models.

    `build` names a function (dotted path) that returns a local directory, building it into the
    cache on first use (`vat.models.tiny.tiny_model_dir`, `vat.models.smollm2.smollm2_model_dir`);
    `build_args` are its keyword arguments. When `build` is set, `pretrained` is ignored.
    ``dtype`` and ``padding_side`` are choices: another value fails when the config is composed
    (or when a `ModelSpec` is built with it).
    """

    name: str = "???"
    pretrained: str | None = None
    build: str | None = None
    build_args: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    dtype: DType = DType.float32
    trust_remote_code: bool = False
    padding_side: PaddingSide = PaddingSide.left
    lora: LoraSpec | None = None


def resolve_path(spec: ModelSpec) -> str:
    """The directory or Hub id that `from_pretrained` should read."""
    if spec.build:
        return str(get_method(spec.build)(**dict(spec.build_args)))
    if not spec.pretrained:
        raise ValueError(
            f"model {spec.name!r}: set model.pretrained (Hub id or path) or model.build"
        )
    return spec.pretrained


def load_tokenizer(spec: ModelSpec, path: str | None = None):
    """The tokenizer with a pad token and the configured padding side."""
    from transformers import AutoTokenizer

    path = path or resolve_path(spec)
    warn_remote_code(spec, path)
    tok = AutoTokenizer.from_pretrained(
        path, revision=spec.revision, trust_remote_code=spec.trust_remote_code
    )
    tok.padding_side = str(spec.padding_side)  # a PaddingSide: ModelSpec checked it
    if tok.pad_token is None:
        # Padding positions are masked out everywhere, so reusing EOS as pad is safe.
        tok.pad_token = tok.eos_token
    return tok


def warn_remote_code(spec: ModelSpec, path: str) -> None:
    """Say so, every time, when `from_pretrained` may run Python code shipped with the model."""
    if spec.trust_remote_code:
        log.warning(
            "model %s: model.trust_remote_code=true runs Python code shipped with %s; set it only "
            "for a model whose code you have read and trust",
            spec.name,
            path,
        )


def load_model(spec: ModelSpec, path: str | None = None, *, with_lora: bool = True):
    """The causal LM in the configured dtype, in eval mode, with LoRA adapters if configured."""
    from transformers import AutoModelForCausalLM

    path = path or resolve_path(spec)
    warn_remote_code(spec, path)
    model = AutoModelForCausalLM.from_pretrained(
        path,
        revision=spec.revision,
        dtype=TORCH_DTYPES[spec.dtype],
        trust_remote_code=spec.trust_remote_code,
    )
    model.eval()
    if with_lora and spec.lora is not None:
        model = apply_lora(model, spec.lora)
    return model


def import_model_class(spec: ModelSpec) -> type:
    """Import the model's transformers classes now, before DeepSpeed ZeRO-3's `zero.Init` is entered.

    Inside `zero.Init`, DeepSpeed's `__init_subclass__` hook records each newly defined module
    class's `__init__` before the class's decorators run. transformers 5.25 decorates
    `LlamaAttention` with `kernels.use_kernelized_func`, which replaces `__init__` with one that sets
    `_kernel_funcs`; DeepSpeed's unpatch (what `outside_zero_init` does around LoRA) then restores
    the undecorated `__init__`, and every model built afterwards (the frozen-copy reference) fails in
    forward with "no attribute '_kernel_funcs'". A class imported before `zero.Init` is patched and
    unpatched whole. Builds the model on the meta device: no weights are allocated or read."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = resolve_path(spec)
    config = AutoConfig.from_pretrained(
        path, revision=spec.revision, trust_remote_code=spec.trust_remote_code
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=spec.trust_remote_code)
    return type(model)


def apply_lora(model, lora: LoraSpec):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, cfg)


def load(spec: ModelSpec, *, with_lora: bool = True):
    """(model, tokenizer) for a `ModelSpec` (or a config node with its fields)."""
    spec = as_spec(spec)
    path = resolve_path(spec)
    return load_model(spec, path, with_lora=with_lora), load_tokenizer(spec, path)


def as_spec(cfg: Any) -> ModelSpec:
    """A `ModelSpec` from a dataclass, dict or OmegaConf node."""
    if isinstance(cfg, ModelSpec):
        return cfg
    from omegaconf import DictConfig, OmegaConf

    d = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    lora = d.pop("lora", None)
    known = {k: v for k, v in d.items() if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(**known, lora=LoraSpec(**lora) if lora else None)
