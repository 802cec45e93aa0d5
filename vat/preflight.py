"""Checks that run before any expensive work, failing in seconds with a message naming what is
wrong instead of an hour into a GPU job."""

from __future__ import annotations

from vat import values as V
from vat.data import ItemSet


def check_items(items: ItemSet, target: str) -> dict:
    """The held-out split covers every value and the target value has training pairs."""
    target = V.normalize_value(target)
    held = items.heldout()  # raises naming the values without a held-out scene
    train_pairs = items.train(target).pairs()
    if not train_pairs:
        raise ValueError(f"value={target}: the train split has no express/suppress pair for it")
    return {
        "target": target,
        "n_items": len(items),
        "n_scenes": len(items.scenes()),
        "n_heldout_items": len(held),
        "n_heldout_scenes": len(held.scenes()),
        "n_train_pairs_target": len(train_pairs),
        "n_dropped_rows": items.report.n_dropped if items.report else 0,
    }
