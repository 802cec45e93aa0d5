"""Scenario-action items: schema, loaders, validation, splits and selections."""

from vat.data.items import ItemSet
from vat.data.loaders import BUNDLED, bundled_path, load_items, rows_to_items
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
