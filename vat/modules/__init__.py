"""One self-contained LightningModule per training method."""

from vat.modules.dpo import DPOModule
from vat.modules.sft import SFTModule

__all__ = ["DPOModule", "SFTModule", "is_preference", "is_prompting"]


def is_prompting(method_cfg) -> bool:
    """A method that trains nothing: it has an ``intervention`` and no ``module`` (prompting)."""
    return "intervention" in method_cfg and "module" not in method_cfg


def is_preference(method_cfg) -> bool:
    """A method whose module is a `DPOModule` (or a subclass): it trains on preference pairs."""
    from hydra.utils import get_class

    return issubclass(get_class(method_cfg.module._target_), DPOModule)
