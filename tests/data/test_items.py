"""`vat.data.items.ItemSet`: the train/held-out selectors on the bundled set, and a held-out split
that misses a value."""

import pytest

from tests.data.helpers import valid_rows, write_jsonl
from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, DataError, load_items


def test_selectors_on_bundled():
    items = load_items(BUNDLED, SCHWARTZ, test_fraction=0.3, seed=0)
    held = items.heldout()
    assert {it.split for it in held} == {"test"} and held.values() == list(items.values())
    train_sec = items.train("Security")
    assert {it.value for it in train_sec} == {"security"} and {it.split for it in train_sec} == {
        "train"
    }
    assert not set(held.scenes()) & set(items.train().scenes())
    for e, s in train_sec.pairs():
        assert (e.polarity, s.polarity) == ("express", "suppress")
        assert (e.scene_id, e.micro_value) == (s.scene_id, s.micro_value)


def test_heldout_without_a_value_is_an_error(tmp_path):
    rows = valid_rows()  # only benevolence and stimulation
    items = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)), SCHWARTZ)
    with pytest.raises(
        DataError, match=r"held-out split has no scene for values \['self_direction', 'hedonism'"
    ):
        items.heldout()
