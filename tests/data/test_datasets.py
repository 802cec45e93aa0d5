"""`vat.data.datasets`: the SFT and preference training sets (train split only, labels on the
response, the shared prompt of a pair, truncation and errors), on the tiny offline tokenizer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.data.helpers import TARGET, prompt_and_response
from vat.data.datasets import PreferenceDataset, SFTDataset
from vat.losses import IGNORE_INDEX


def test_dataset_truncation_and_errors(items, tok, train_prompt):
    ds = SFTDataset(items, TARGET, tok, replace(train_prompt, max_length=64))
    assert max(len(e["input_ids"]) for e in ds) <= 64
    first = next(it for it in items.train(TARGET) if it.polarity == "express")
    with pytest.raises(ValueError, match=first.id):  # the first item that does not fit is named
        SFTDataset(items, TARGET, tok, replace(train_prompt, max_length=8))
    with pytest.raises(ValueError, match="no train-split"):
        SFTDataset(items.heldout(), TARGET, tok, train_prompt)
    with pytest.raises(ValueError, match="no train-split"):
        PreferenceDataset(items.heldout(), TARGET, tok, train_prompt)


# ----------------------------------------------------------------------------------------- SFT
def test_sft_examples_are_train_express_of_target(items, sft, tok):
    train = items.train(TARGET)
    expected = {it.id for it in train if it.polarity == "express"}
    assert {e["id"] for e in sft} == expected
    assert len(sft) == len(expected) > 0
    held_scenes = {it.scene_id for it in items.heldout()}
    assert not held_scenes & {it.scene_id for it in sft.items}
    assert all(it.split == "train" and it.value == TARGET for it in sft.items)
    assert [e["index"] for e in sft] == list(range(len(sft)))


def test_sft_labels_and_decoding(sft, tok):
    tp = sft.prompt
    for e, it in zip(sft, sft.items, strict=True):
        p, r = tp.encode(tok, it)
        assert e["input_ids"] == p + r
        assert e["labels"] == [IGNORE_INDEX] * len(p) + r  # -100 exactly on the prompt
        assert r[-1] == tok.eos_token_id
        assert tok.decode(r[:-1]).strip() == it.action
        prompt_text = tok.decode(p)
        # The value is never named, except where the scenario itself says it.
        assert "benevolence" not in prompt_text.lower().replace(it.scenario.lower(), "")
        assert tp.user_text(it) in prompt_text


# ---------------------------------------------------------------------------------- preference
def test_preference_examples(items, pref, tok):
    pairs = items.train(TARGET).pairs()
    assert len(pref) == len(pairs) > 0
    assert len({e["id"] for e in pref}) == len(pref)
    for e, (c, r) in zip(pref, pairs, strict=True):
        assert (e["chosen_id"], e["rejected_id"]) == (c.id, r.id)
        assert c.polarity == "express" and r.polarity == "suppress" and c.split == "train"
        assert e["id"] == f"{c.scene_id}/{c.micro_value}"
        pc, rc = prompt_and_response(e, "chosen_")
        pr, rr = prompt_and_response(e, "rejected_")
        assert pc == pr  # identical prompt
        assert tok.decode(rc[:-1]).strip() == c.action
        assert tok.decode(rr[:-1]).strip() == r.action
        assert rc[-1] == rr[-1] == tok.eos_token_id
    assert [e["index"] for e in pref] == list(range(len(pref)))


def test_preference_shared_prompt_under_truncation(items, tok, train_prompt):
    ds = PreferenceDataset(items, TARGET, tok, replace(train_prompt, max_length=48))
    for e, (c, r) in zip(ds, ds.pairs, strict=True):
        pc, rc = prompt_and_response(e, "chosen_")
        pr, rr = prompt_and_response(e, "rejected_")
        assert pc == pr
        assert max(len(e["chosen_input_ids"]), len(e["rejected_input_ids"])) <= 48
        assert tok.decode(rc[:-1]).strip() == c.action  # responses intact
        assert tok.decode(rr[:-1]).strip() == r.action
