"""What a config may make `vat` run: callables only from an allowlist of module prefixes.

A Hydra config names callables by import path (``_target_: torch.optim.AdamW``), and so does a
model's ``build`` (the function that builds an offline model into the cache, called by
`vat.models.loading.resolve_path`). A config received from someone else could just as well say
``_target_: os.system`` or ``model.build: os.system``; `check_targets` walks the whole config
before anything is instantiated or built and refuses any such path outside the allowlist, naming
the key. Trusting another package is a deliberate, visible act: ``security.allow_targets=[mypkg.]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Libraries `vat` builds on; their callables are what the shipped configs instantiate.
ALLOWED_PREFIXES = (
    "vat.",
    "torch.",
    "lightning.",
    "pytorch_lightning.",
    "transformers.",
    "peft.",
    "deepspeed.",
    "hydra_plugins.",
)


#: Keys whose value is a callable's import path: ``_target_`` (Hydra) and ``build`` (a model's
#: builder, `vat.models.ModelSpec`; null there means no builder).
CALLABLE_KEYS = ("_target_", "build")
_OPTIONAL = ("build",)


class UnsafeTargetError(ValueError):
    """A config names a callable (``_target_``, ``model.build``) outside the allowlist."""


def _allowed(target: str, prefixes: Iterable[str]) -> bool:
    return any(target.startswith(p) or target == p.rstrip(".") for p in prefixes)


def iter_targets(node: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    """``(key path, value)`` of every callable path (`CALLABLE_KEYS`) in a config (values
    unresolved); a null ``build`` names nothing and is left out."""
    if isinstance(node, DictConfig):
        for k in node:
            key = f"{path}.{k}" if path else str(k)
            child = node._get_node(k)
            if k in CALLABLE_KEYS:
                value = child._value() if child is not None else None
                if value is not None or k not in _OPTIONAL:
                    yield key, value
            elif isinstance(child, DictConfig | ListConfig):
                yield from iter_targets(child, key)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, DictConfig | ListConfig):
                yield from iter_targets(child, f"{path}[{i}]")


def check_targets(cfg: DictConfig, extra: Iterable[str] | None = None) -> None:
    """Raise `UnsafeTargetError` for any callable path outside `ALLOWED_PREFIXES` + ``extra``.

    ``extra`` defaults to the config's own ``security.allow_targets``.
    """
    if extra is None:
        extra = OmegaConf.select(cfg, "security.allow_targets", default=None) or []
    prefixes = (*ALLOWED_PREFIXES, *[str(p) for p in extra])
    bad = [
        (k, v) for k, v in iter_targets(cfg) if not (isinstance(v, str) and _allowed(v, prefixes))
    ]
    if bad:
        shown = "; ".join(f"{k}={v!r}" for k, v in bad)
        raise UnsafeTargetError(
            f"refusing to instantiate {shown}: a config may only name callables from "
            f"{', '.join(p.rstrip('.') for p in prefixes)}. If you trust that code, allow its "
            "module on purpose: security.allow_targets=[<module>.]"
        )
