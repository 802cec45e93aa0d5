"""`vat.data.splits.assign_splits`: scene-level, seeded train/test splits; a split column is
honoured and checked."""

import pytest

from vat.data import DataError, Item
from vat.data.splits import assign_splits


def _items(n_scenes):
    return [
        Item(f"{s}-{p}", f"scene{s}", "c", "d", "x", "power", "wealth", p, "a")
        for s in range(n_scenes)
        for p in ("express", "suppress")
    ]


def test_split_is_scene_level_and_deterministic():
    items = _items(20)
    a = assign_splits(items, test_fraction=0.3, seed=3)
    b = assign_splits(items, test_fraction=0.3, seed=3)
    c = assign_splits(items, test_fraction=0.3, seed=4)
    assert [i.split for i in a] == [i.split for i in b]
    assert [i.split for i in a] != [i.split for i in c]
    test_scenes = {i.scene_id for i in a if i.split == "test"}
    train_scenes = {i.scene_id for i in a if i.split == "train"}
    assert len(test_scenes) == 6 and not test_scenes & train_scenes and len(train_scenes) == 14


def test_split_column_honoured_and_checked():
    items = [
        Item(
            i.id,
            i.scene_id,
            "c",
            "d",
            "x",
            "power",
            "wealth",
            i.polarity,
            "a",
            "test" if i.scene_id == "scene0" else "train",
        )
        for i in _items(3)
    ]
    out = assign_splits(items, test_fraction=0.5, seed=0)
    assert {i.scene_id for i in out if i.split == "test"} == {"scene0"}
    mixed = [
        *items[:-1],
        Item("z", "scene0", "c", "d", "x", "power", "wealth", "suppress", "a", "train"),
    ]
    with pytest.raises(DataError, match="1 scenes have items in both train and test"):
        assign_splits(mixed, test_fraction=0.5, seed=0)
    partial = [
        *items[:-1],
        Item("z", "scene2", "c", "d", "x", "power", "wealth", "suppress", "a", None),
    ]
    with pytest.raises(DataError, match="1 of 6 items have no split"):
        assign_splits(partial, test_fraction=0.5, seed=0)
