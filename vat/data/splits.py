"""Scene-level train/test splits: no scene ever has items on both sides."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from vat.data.schema import DataError, Item


def assign_splits(
    items: list[Item],
    *,
    test_fraction: float,
    seed: int,
    use_column: bool = True,
    source: str = "split",
) -> list[Item]:
    """Give every item a split, whole scenes at a time.

    If the data has a split column (every item has `split` set) and `use_column` is true, it is kept
    and checked for scene disjointness. Otherwise scenes are shuffled with ``numpy.random.
    default_rng(seed)`` in sorted-id order and the first ``round(test_fraction * n_scenes)`` (at least
    one, at most all but one) become the held-out test split: the same seed gives the same split on
    any machine. `source` (the data file) starts the message of a `DataError`.
    """
    given = [it.split is not None for it in items]
    if use_column and all(given):
        by_scene: dict[str, set[str]] = defaultdict(set)
        for it in items:
            by_scene[it.scene_id].add(it.split)
        mixed = sorted(s for s, sp in by_scene.items() if len(sp) > 1)
        if mixed:
            raise DataError(source, None, "split",
                            f"{len(mixed)} scenes have items in both train and test (e.g. {mixed[:3]}); "
                            "splits must be scene-level")  # fmt: skip
        return items
    if use_column and any(given):
        missing = [it.id for it, g in zip(items, given, strict=True) if not g]
        raise DataError(source, None, "split",
                        f"{len(missing)} of {len(items)} items have no split (e.g. ids {missing[:3]}); "
                        "give every row a split or set data.use_split_column=false to split by seed")  # fmt: skip
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
    scenes = sorted({it.scene_id for it in items})
    if len(scenes) < 2:
        raise DataError(source, None, "scene_id",
                        f"need at least 2 scenes to split, got {len(scenes)} ({scenes[:3]}): a "
                        "held-out scene is never trained on; add scenes")  # fmt: skip
    order = np.random.default_rng(seed).permutation(len(scenes))
    n_test = min(max(1, round(test_fraction * len(scenes))), len(scenes) - 1)
    test = {scenes[i] for i in order[:n_test]}
    return [
        dataclasses.replace(it, split="test" if it.scene_id in test else "train") for it in items
    ]
