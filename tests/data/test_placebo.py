"""Placebo data really are placebos: a permutation of labels, an even mix, neutral text."""

from __future__ import annotations

from collections import Counter

import pytest

from tests import schwartz as V
from tests.schwartz import SCHWARTZ
from vat.data import placebo as P
from vat.data.datasets import PreferenceDataset, SFTDataset
from vat.data.register import has_negation
from vat.interventions import NEUTRAL_SYSTEM, Prompting, neutral_system_prompt

TARGET = "benevolence"


def test_shuffled_pairs_are_a_balanced_permutation_of_the_labels(items):
    pairs = items.train(TARGET).pairs()
    out, swapped = P.shuffled_pairs(pairs, seed=3)
    assert sum(swapped) == len(pairs) // 2  # exactly half swapped
    for (c, r), (c0, r0), s in zip(out, pairs, swapped, strict=True):
        assert {c.id, r.id} == {c0.id, r0.id}  # the same two actions, same prompt
        assert (c.id, r.id) == ((r0.id, c0.id) if s else (c0.id, r0.id))
    # chosen is express in exactly the unswapped pairs: no direction left on average
    assert Counter(c.polarity for c, _ in out) == {"express": len(pairs) - len(pairs) // 2,
                                                   "suppress": len(pairs) // 2}  # fmt: skip
    assert P.shuffled_pairs(pairs, seed=3)[1] == swapped  # seeded
    assert P.shuffled_pairs(pairs, seed=4)[1] != swapped


def test_mixed_pairs_draw_evenly_from_every_value(items):
    n = len(items.train(TARGET).pairs())
    out = P.mixed_pairs(items, n, seed=0)
    assert len(out) == n and len({(c.id, r.id) for c, r in out}) == n
    per_value = Counter(c.value for c, _ in out)
    assert set(per_value) == set(V.BASIC_VALUES)
    assert max(per_value.values()) - min(per_value.values()) <= 1
    assert all(c.polarity == "express" and r.polarity == "suppress" for c, r in out)
    assert all(c.split == "train" and r.split == "train" for c, r in out)


def test_neutral_text_names_no_value_and_matches_length(items):
    for a in P.NEUTRAL_ACTIONS:
        assert P.names_a_value(a, SCHWARTZ) is None, a
        assert not has_negation(a), a
        assert a.startswith("I ") and 15 <= len(a.split()) <= 28
    assert len(set(P.NEUTRAL_ACTIONS)) == len(P.NEUTRAL_ACTIONS)
    express = list(items.train(TARGET).where(polarity="express"))
    out = P.neutral_items(express, seed=0)
    gaps = [
        abs(len(a.action.split()) - len(b.action.split()))
        for a, b in zip(express, out, strict=True)
    ]
    assert sum(gaps) / len(gaps) <= 2.0
    assert len({o.action for o in out}) >= min(len(out), len(P.NEUTRAL_ACTIONS)) * 0.75
    assert all(
        o.scenario == e.scenario and o.split == "train" for o, e in zip(out, express, strict=True)
    )
    assert P.names_a_value("I act with Benevolence.", SCHWARTZ) == "Benevolence"


def test_placebo_datasets_keep_budget_and_format(items, tok, train_prompt):
    prompt = train_prompt
    real = PreferenceDataset(items, TARGET, tok, prompt)
    shuf = PreferenceDataset(items, TARGET, tok, prompt, train_data="shuffled", placebo_seed=1)
    mixed = PreferenceDataset(items, TARGET, tok, prompt, train_data="mixed", placebo_seed=1)
    assert len(real) == len(shuf) == len(mixed)
    # shuffled: token for token the same sequences, half of them with the roles exchanged
    tokens = lambda d: sorted(tuple(e["chosen_input_ids"]) + tuple(e["rejected_input_ids"])  # noqa: E731
                              for e in d.examples)  # fmt: skip
    assert sorted(map(sorted, ([e["chosen_input_ids"], e["rejected_input_ids"]] for e in real.examples))) == \
        sorted(map(sorted, ([e["chosen_input_ids"], e["rejected_input_ids"]] for e in shuf.examples)))  # fmt: skip
    assert tokens(real) != tokens(shuf)
    assert sum(shuf.swapped) == len(shuf) // 2
    sft = SFTDataset(items, TARGET, tok, prompt)
    neutral = SFTDataset(items, TARGET, tok, prompt, train_data="neutral")
    assert len(sft) == len(neutral)
    assert all(P.names_a_value(it.action, SCHWARTZ) is None for it in neutral.items)
    with pytest.raises(ValueError, match="train_data='neutral' is not a preference kind"):
        PreferenceDataset(items, TARGET, tok, prompt, train_data="neutral")


def test_prompting_placebo_is_length_matched_and_off_target(items):
    real = Prompting(shots=[8])
    plac = Prompting(shots=[8], placebo=True)
    c_real, c_plac = real.context(items, TARGET, 8), plac.context(items, TARGET, 8)
    n_real, n_plac = len(c_real.system.split()), len(c_plac.system.split())
    assert abs(n_real - n_plac) <= 6, (c_real.system, c_plac.system)
    assert P.names_a_value(c_plac.system, SCHWARTZ) is None
    assert c_plac.system.startswith(NEUTRAL_SYSTEM[0])
    vals = [V.MICRO[m].value for _, _, m in c_plac.examples]
    assert TARGET not in vals and len(set(vals)) == 8  # one value after another
    assert c_plac.polarities == ["express", "suppress"] * 4  # not all top ratings
    assert c_real.polarities is None and c_real.shot_polarities() == ["express"] * 8
    # nested across k, like the real prompt
    assert plac.context(items, TARGET, 4).examples == c_plac.examples[:4]
    assert neutral_system_prompt(1) == NEUTRAL_SYSTEM[0]


def test_prompt_context_fingerprint_unchanged_without_polarities(items):
    """Cache keys of real prompting contexts are what they were before placebos existed."""
    import hashlib
    import json
    from dataclasses import asdict

    ctx = Prompting(shots=[2]).context(items, TARGET, 2)
    d = asdict(ctx)
    del d["polarities"]
    assert (
        ctx.fingerprint() == hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]
    )


@pytest.mark.parametrize(("order", "best", "worst"), [("forward", "5", "1"), ("reverse", "1", "5")])
def test_judgment_answers_placebo_shots_with_top_and_bottom_ratings(items, tok, order, best, worst):
    from vat.probes import JudgmentProbe

    probe = JudgmentProbe(use_chat_template=False, plain_answer_prefix="\nAnswer: ")
    ctx = Prompting(shots=[4], placebo=True).context(items, TARGET, 4)
    held = items.heldout().where(value="security")
    text = tok.decode(list(probe.requests(tok, held, order, ctx)[0].context))
    answers = [line.removeprefix("Answer: ").strip() for line in text.splitlines()
               if line.startswith("Answer:")]  # fmt: skip
    assert answers[:4] == [best, worst, best, worst]  # express, suppress, express, suppress
