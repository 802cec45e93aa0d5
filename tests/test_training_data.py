"""Training data: prompts, SFT and preference datasets and collators, on the tiny offline tokenizer."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vat.data import ItemSet
from vat.data.collate import PreferenceCollator, SFTCollator
from vat.data.datasets import PreferenceDataset, SFTDataset
from vat.data.prompt import TrainPrompt
from vat.forward import encode_pair
from vat.losses import IGNORE_INDEX
from vat.models import ModelSpec

TARGET = "benevolence"


@pytest.fixture(scope="module")
def sft(items, tok, train_prompt):
    return SFTDataset(items, TARGET, tok, train_prompt)


@pytest.fixture(scope="module")
def pref(items, tok, train_prompt):
    return PreferenceDataset(items, TARGET, tok, train_prompt)


def _split(example: dict, prefix: str = "") -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of an example, read off its labels."""
    ids, labels = example[prefix + "input_ids"], example[prefix + "labels"]
    n = sum(y == IGNORE_INDEX for y in labels)
    return ids[:n], ids[n:]


# --------------------------------------------------------------------------------- TrainPrompt
def test_configured_fields_have_no_code_default():
    # conf/train.yaml's prompt: node is their one home; the code adds no second default.
    with pytest.raises(TypeError, match="template"):
        TrainPrompt()


def test_template_validation(train_prompt):
    with pytest.raises(ValueError, match="scenario"):
        replace(train_prompt, template="What do you do?")
    with pytest.raises(ValueError, match="only"):
        replace(train_prompt, template="{scenario} ({micro_label})")
    for bad in ("Act with benevolence. {scenario}", "{scenario}\nShow SELF-DIRECTION."):
        with pytest.raises(ValueError, match="names the value"):
            replace(train_prompt, template=bad)
    replace(train_prompt, template="Situation: {scenario}\nYour move?")  # fine


def test_fingerprint_stable_and_field_sensitive(train_prompt):
    a = train_prompt
    assert a.fingerprint() == replace(a).fingerprint()
    assert len({a.fingerprint()} | {
        replace(a, **kw).fingerprint()
        for kw in ({"max_length": 128}, {"add_eos": False}, {"use_chat_template": False},
                   {"plain_answer_prefix": "\nA: "}, {"template": "S: {scenario}"})
    }) == 6  # fmt: skip


def test_encode_matches_probe_machinery(items, tok, train_prompt):
    it = items.train(TARGET).items[0]
    for chat in (True, False):
        tp = replace(train_prompt, use_chat_template=chat)
        c, x = encode_pair(tok, tp.prompt_text(tok, it), it.action)
        p, r = tp.encode(tok, it)
        assert p == c
        assert r == [*x, tok.eos_token_id]
        p, r = replace(tp, add_eos=False).encode(tok, it)
        assert (p, r) == (c, x)


def test_chat_and_plain_modes(items, tok, train_prompt):
    it = items.train(TARGET).items[0]
    chat = replace(train_prompt, use_chat_template=True)
    text = chat.prompt_text(tok, it)
    assert text.endswith("<|im_start|>assistant\n")  # generation prompt, then the reply
    assert chat.user_text(it) in text
    p, r = chat.encode(tok, it)
    assert tok.decode(p).endswith("<|im_start|>assistant")
    assert tok.decode(r, skip_special_tokens=True).strip() == it.action

    plain = replace(train_prompt, use_chat_template=False)
    text = plain.prompt_text(tok, it)
    assert text == plain.user_text(it) + "\nAnswer: "
    assert "<|im_start|>" not in text
    p, r = plain.encode(tok, it)
    # lm-eval split: the prefix's trailing space moves to the response.
    assert tok.decode(p).endswith("What do you do?\nAnswer:")
    assert tok.decode(r[:-1]) == " " + it.action


def test_chat_mode_without_template_raises(items, tok, train_prompt):
    it = items.train(TARGET).items[0]
    base = tok.__class__.from_pretrained(tok.name_or_path)
    base.chat_template = None
    with pytest.raises(ValueError, match="use_chat_template=false"):
        replace(train_prompt, use_chat_template=True).encode(base, it)
    replace(train_prompt, use_chat_template=False).encode(base, it)  # plain mode works


def test_truncation_cuts_prompt_from_left(items, tok, train_prompt):
    it = items.train(TARGET).items[0]
    full_p, full_r = train_prompt.encode(tok, it)
    n = len(full_r) + 5
    p, r = replace(train_prompt, max_length=n).encode(tok, it)
    assert r == full_r  # the response is never cut
    assert p == full_p[-5:]  # the prompt keeps its end (the generation prompt)
    assert len(p) + len(r) == n

    with pytest.raises(ValueError, match=it.id):
        replace(train_prompt, max_length=len(full_r) - 1).encode(tok, it)
    with pytest.raises(ValueError, match=it.id):  # at least one prompt token must remain
        replace(train_prompt, max_length=len(full_r)).encode(tok, it)


def test_dataset_truncation_and_errors(items, tok, train_prompt):
    ds = SFTDataset(items, TARGET, tok, replace(train_prompt, max_length=64))
    assert max(len(e["input_ids"]) for e in ds) <= 64
    first = next(it for it in items.train(TARGET) if it.polarity == "express")
    with pytest.raises(ValueError, match=first.id):  # the first item that does not fit is named
        SFTDataset(items, TARGET, tok, replace(train_prompt, max_length=8))
    with pytest.raises(ValueError, match="no train-split"):
        SFTDataset(ItemSet(items.heldout().items), TARGET, tok, train_prompt)
    with pytest.raises(ValueError, match="no train-split"):
        PreferenceDataset(ItemSet(items.heldout().items), TARGET, tok, train_prompt)


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
        pc, rc = _split(e, "chosen_")
        pr, rr = _split(e, "rejected_")
        assert pc == pr  # identical prompt
        assert tok.decode(rc[:-1]).strip() == c.action
        assert tok.decode(rr[:-1]).strip() == r.action
        assert rc[-1] == rr[-1] == tok.eos_token_id
    assert [e["index"] for e in pref] == list(range(len(pref)))


def test_preference_shared_prompt_under_truncation(items, tok, train_prompt):
    ds = PreferenceDataset(items, TARGET, tok, replace(train_prompt, max_length=48))
    for e, (c, r) in zip(ds, ds.pairs, strict=True):
        pc, rc = _split(e, "chosen_")
        pr, rr = _split(e, "rejected_")
        assert pc == pr
        assert max(len(e["chosen_input_ids"]), len(e["rejected_input_ids"])) <= 48
        assert tok.decode(rc[:-1]).strip() == c.action  # responses intact
        assert tok.decode(rr[:-1]).strip() == r.action


# ----------------------------------------------------------------------------------- collators
def test_preference_collator(pref, tok):
    batch = [pref[i] for i in (0, 3, 5)]
    b = len(batch)
    out = PreferenceCollator(tok.pad_token_id)(batch)
    rows = [e["chosen_input_ids"] for e in batch] + [e["rejected_input_ids"] for e in batch]
    labs = [e["chosen_labels"] for e in batch] + [e["rejected_labels"] for e in batch]
    width = max(map(len, rows))
    assert out["input_ids"].shape == out["attention_mask"].shape == out["labels"].shape
    assert out["input_ids"].shape == (2 * b, width)
    assert out["index"].tolist() == [0, 3, 5] and out["index"].dtype == torch.long
    assert out["attention_mask"].sum(1).tolist() == [len(s) for s in rows]
    for i, (s, y) in enumerate(zip(rows, labs, strict=True)):  # chosen rows first, right padding
        n = len(s)
        assert out["input_ids"][i, :n].tolist() == s
        assert out["labels"][i, :n].tolist() == y
        assert out["attention_mask"][i, :n].all() and not out["attention_mask"][i, n:].any()
        assert (out["input_ids"][i, n:] == tok.pad_token_id).all()
        assert (out["labels"][i, n:] == IGNORE_INDEX).all()

    padded = PreferenceCollator(tok.pad_token_id, pad_to_multiple_of=64)(batch)
    assert padded["input_ids"].shape[1] % 64 == 0
    assert padded["attention_mask"].sum().item() == out["attention_mask"].sum().item()


def test_packed_pairs_hold_each_pair_once_with_its_prompt(pref, tok):
    """`pack_pairs`: row i = prompt + chosen + rejected; rejected positions continue the prompt;
    every response token is predicted from the right position (the first rejected one from the
    last prompt token), and the grid slots put chosen rows first."""
    batch = [pref[i] for i in (0, 3, 5)]
    b = len(batch)
    out = PreferenceCollator(tok.pad_token_id)(batch)
    ids, pos, seg = out["packed_input_ids"], out["packed_position_ids"], out["packed_segment"]
    assert ids.shape == pos.shape == seg.shape and ids.shape[0] == b
    grid = out["response_mask"].shape[1]
    for i, e in enumerate(batch):
        p, c = _split(e, "chosen_")
        _, r = _split(e, "rejected_")
        n = len(p) + len(c) + len(r)
        assert ids[i, :n].tolist() == p + c + r and (ids[i, n:] == tok.pad_token_id).all()
        assert pos[i, :n].tolist() == [*range(len(p) + len(c)), *range(len(p), len(p) + len(r))]
        assert seg[i, :n].tolist() == [0] * len(p) + [1] * len(c) + [2] * len(r)
        assert (seg[i, n:] == -1).all()
        for side, resp, row in (("c", c, i), ("r", r, b + i)):
            sel = out["target_slot"] // grid == row
            assert out["target_ids"][sel].tolist() == resp
            assert (out["target_row"][sel] == i).all()
            first = len(p) if side == "c" else len(p) + len(c)
            want = [len(p) - 1, *range(first, first + len(resp) - 1)]
            assert out["target_pos"][sel].tolist() == want
            assert out["response_mask"][row].sum().item() == len(resp)


def test_pairs_without_a_shared_prompt_are_not_packed(pref, tok):
    e = dict(pref[0])
    e["rejected_input_ids"] = [e["rejected_input_ids"][0] + 1, *e["rejected_input_ids"][1:]]
    assert "packed_input_ids" not in PreferenceCollator(tok.pad_token_id)([pref[1], e])
    assert "packed_input_ids" in PreferenceCollator(tok.pad_token_id)([pref[1], pref[0]])


def test_sft_collator(sft, tok):
    batch = [sft[i] for i in range(4)]
    out = SFTCollator(tok.pad_token_id, pad_to_multiple_of=8)(batch)
    lens = [len(e["input_ids"]) for e in batch]
    assert out["input_ids"].shape == (4, -(-max(lens) // 8) * 8)
    assert out["attention_mask"].sum(1).tolist() == lens
    assert out["index"].tolist() == [0, 1, 2, 3]
    for i, e in enumerate(batch):
        assert out["labels"][i, : lens[i]].tolist() == e["labels"]
        assert (out["labels"][i, lens[i] :] == IGNORE_INDEX).all()
    # Works as a DataLoader collate_fn.
    loader = torch.utils.data.DataLoader(sft, batch_size=5, collate_fn=SFTCollator(0))
    assert sum(b["input_ids"].shape[0] for b in loader) == len(sft)


def test_batch_logprobs_equal_probe_scores(tiny_dir, pref, tok):
    """The response log-probs read off a collated batch are what the probe's Scorer computes."""
    from vat.models import load
    from vat.probes import Request, Scorer

    model, _ = load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
    batch = [pref[i] for i in range(3)]
    out = PreferenceCollator(tok.pad_token_id)(batch)
    with torch.no_grad():
        logits = model(input_ids=out["input_ids"], attention_mask=out["attention_mask"]).logits
    lp = logits[:, :-1].float().log_softmax(-1)
    targets = out["labels"][:, 1:]
    # Leave the EOS out: the probe scores the action alone.
    mask = (targets != IGNORE_INDEX) & (targets != tok.eos_token_id)
    tok_lp = lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    ours = (tok_lp * mask).sum(1).double().numpy()

    reqs = []
    for e in batch:
        for side in ("chosen_", "rejected_"):
            p, r = _split(e, side)
            reqs.append((side, Request(tuple(p), tuple(r[:-1]))))
    ordered = [r for s in ("chosen_", "rejected_") for side, r in reqs if side == s]
    ref = Scorer(model, batch_size=2, reuse_prefix=False, progress=False).score(ordered).logprob
    assert ours == pytest.approx(ref, abs=1e-4)
