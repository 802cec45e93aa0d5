"""The SFT and preference training sets of the bundled items toward `TARGET`, on the tiny model's
tokenizer (the datasets' and the collators' tests)."""

import pytest

from tests.data.helpers import TARGET
from vat.data.datasets import PreferenceDataset, SFTDataset


@pytest.fixture(scope="module")
def sft(items, tok, train_prompt):
    return SFTDataset(items, TARGET, tok, train_prompt)


@pytest.fixture(scope="module")
def pref(items, tok, train_prompt):
    return PreferenceDataset(items, TARGET, tok, train_prompt)
