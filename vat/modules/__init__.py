"""One self-contained LightningModule per training method (its data: `vat.data.datamodule`)."""

from vat.modules.dpo import DPOModule
from vat.modules.sft import SFTModule

__all__ = ["DPOModule", "SFTModule"]
