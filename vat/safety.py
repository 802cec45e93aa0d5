"""What a config may make `vat` run: ``_target_`` only from an allowlist of module prefixes.

A Hydra config names callables by import path (``_target_: torch.optim.AdamW``). A config received
from someone else could just as well say ``_target_: os.system``; `check_targets` walks the whole
config before anything is instantiated and refuses any ``_target_`` outside the allowlist, naming
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


class UnsafeTargetError(ValueError):
    """A config names a ``_target_`` outside the allowlist."""


def _allowed(target: str, prefixes: Iterable[str]) -> bool:
    return any(target.startswith(p) or target == p.rstrip(".") for p in prefixes)


def iter_targets(node: Any, path: str = "") -> Iterable[tuple[str, Any]]:
    """``(key path, value)`` of every ``_target_`` in a config (values unresolved)."""
    if isinstance(node, DictConfig):
        for k in node:
            key = f"{path}.{k}" if path else str(k)
            child = node._get_node(k)
            if k == "_target_":
                yield key, child._value() if child is not None else None
            elif isinstance(child, DictConfig | ListConfig):
                yield from iter_targets(child, key)
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            child = node._get_node(i)
            if isinstance(child, DictConfig | ListConfig):
                yield from iter_targets(child, f"{path}[{i}]")


def check_targets(cfg: DictConfig, extra: Iterable[str] | None = None) -> None:
    """Raise `UnsafeTargetError` for any ``_target_`` outside `ALLOWED_PREFIXES` + ``extra``.

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
