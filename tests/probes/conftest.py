"""The probes' tests share the tiny offline model and three held-out scenes of the bundled set."""

import pytest

from vat.forward import encode_pair
from vat.models import ModelSpec, load
from vat.probes import Request


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    """(model, tokenizer) of the tiny model, without LoRA."""
    return load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)


@pytest.fixture(scope="module")
def held_small(items):
    """The first three held-out scenes of the bundled set (60 items)."""
    held = items.heldout()
    scenes = held.scenes()[:3]
    return held.subset(it for it in held if it.scene_id in scenes)


@pytest.fixture(scope="module")
def held_requests(tiny, held_small):
    """A scoring request per item of `held_small`: its scene and micro-value, then its action;
    grouped by scene (the items of a scene share the scenario as a prefix)."""
    _, tok = tiny
    reqs = []
    for it in held_small:
        c, x = encode_pair(
            tok, f"Scenario: {it.scenario}\nCare about {it.micro_value}.\nAction:", " " + it.action
        )
        reqs.append(Request(tuple(c), tuple(x), group=it.scene_id))
    return reqs
