"""`vat.interventions.Prompting`: few-shot examples from the train split only, nested across k."""

import pytest

from vat.interventions import Prompting


def test_prompting_uses_train_split_only_and_nests(items):
    p = Prompting(shots=[2, 4, 8], seed=1)
    held_scenes = set(items.heldout().scenes())
    ctx8 = p.context(items, "security", 8)
    ctx2 = p.context(items, "security", 2)
    assert ctx8.examples[:2] == ctx2.examples and len(ctx8.examples) == 8
    train = {(it.scenario, it.action) for it in items.train("security") if it.polarity == "express"}
    assert all((s, a) in train for s, a, _ in ctx8.examples)
    assert not {s for s, _, _ in ctx8.examples} & {
        it.scenario for it in items if it.scene_id in held_scenes
    }
    assert "Security" in ctx8.system
    with pytest.raises(ValueError, match="only"):
        p.context(items, "security", 500)
