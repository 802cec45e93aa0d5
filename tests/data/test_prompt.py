"""`vat.data.prompt.TrainPrompt`: the training prompt's template checks, fingerprint, chat and plain
modes, and left truncation, on the tiny offline tokenizer."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.data.helpers import TARGET
from tests.schwartz import SCHWARTZ
from vat.data.prompt import TrainPrompt
from vat.forward import encode_pair
from vat.taxonomy import Taxonomy, Value

TOY = Taxonomy("toy", "Toy", (Value("care", "Care", ""), Value("order", "Order", "")))


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
            replace(train_prompt, template=bad).check_names(SCHWARTZ)
    replace(train_prompt, template="Situation: {scenario}\nYour move?").check_names(SCHWARTZ)
    replace(train_prompt, template="Act with benevolence. {scenario}").check_names(
        TOY
    )  # not a toy value


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
