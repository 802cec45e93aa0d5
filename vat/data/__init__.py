"""Scenario-action items, and the training data built from them.

This namespace holds the items: schema, readers and loaders, validation, splits and selections.
The training side has its own modules, not re-exported here so that ``import vat.data`` does not
load torch: `vat.data.prompt` (`TrainPrompt`), `vat.data.datasets` (the SFT and preference sets),
`vat.data.collate` (the collators) and `vat.data.sampling` (the resumable epoch order).
`vat.data.placebo` holds the placebo data and `vat.data.register` the register check.
"""

from vat.data.items import ItemSet
from vat.data.loaders import load_items, rows_to_items
from vat.data.readers import BUNDLED, bundled_path
from vat.data.schema import DataError, Item, LoadReport, OnInvalid
from vat.data.splits import assign_splits

__all__ = [
    "BUNDLED",
    "DataError",
    "Item",
    "ItemSet",
    "LoadReport",
    "OnInvalid",
    "assign_splits",
    "bundled_path",
    "load_items",
    "rows_to_items",
]
