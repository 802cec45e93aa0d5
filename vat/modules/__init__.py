"""One self-contained LightningModule per training method."""

from vat.modules.dpo import DPOModule
from vat.modules.sft import SFTModule

__all__ = ["DPOModule", "SFTModule"]
