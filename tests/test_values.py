import pytest

from vat import values as V


def test_counts_per_value():
    counts = {v: len(V.micro_values_of(v)) for v in V.BASIC_VALUES}
    assert counts == {
        "self_direction": 5, "stimulation": 3, "hedonism": 2, "achievement": 6, "power": 5,
        "security": 7, "conformity": 4, "tradition": 6, "benevolence": 9, "universalism": 9,
    }  # fmt: skip
    assert len(V.MICRO_VALUES) == 56 == len(set(V.MICRO_VALUES))


def test_circumplex_order_and_groups():
    assert V.BASIC_VALUES == (
        "self_direction", "stimulation", "hedonism", "achievement", "power",
        "security", "conformity", "tradition", "benevolence", "universalism",
    )  # fmt: skip
    assert [g for g, vs in V.HIGHER_ORDER.items() if "hedonism" in vs] == [
        "openness_to_change",
        "self_enhancement",
    ]
    in_groups = {v for vs in V.HIGHER_ORDER.values() for v in vs}
    assert in_groups == set(V.BASIC_VALUES)


def test_angles_and_distance():
    assert V.slot("conformity") == V.slot("tradition") == 6
    assert V.angle("self_direction") == 0.0
    assert V.angle("universalism") == 320.0
    assert V.angle("power") == 160.0
    assert V.circumplex_distance("conformity", "tradition") == 0
    assert V.circumplex_distance("self_direction", "universalism") == 1  # wraps around
    assert V.circumplex_distance("power", "universalism") == 4  # |4 - 8| = 4
    assert V.circumplex_distance("hedonism", "benevolence") == 4  # |2 - 7| = 5 -> 9 - 5
    assert V.circumplex_distance("stimulation", "tradition") == 4  # |1 - 6| = 5 -> 4
    assert max(V.circumplex_distance(u, v) for u in V.BASIC_VALUES for v in V.BASIC_VALUES) == 4


@pytest.mark.parametrize(
    "spelling", ["self_direction", "Self-Direction", "self direction", " SELF-direction "]
)
def test_name_normalisation(spelling):
    assert V.normalize_value(spelling) == "self_direction"


def test_micro_value_normalisation_and_membership():
    assert (
        V.normalize_micro_value("Honoring of Parents and Elders")
        == "honoring_of_parents_and_elders"
    )
    assert V.basic_value_of("Preserving my Public Image") == "power"
    assert V.basic_value_of("a world at peace") == "universalism"
    assert V.MICRO["self_respect"].gloss == "belief in one's own worth"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(V.UnknownValueError) as e:
        V.normalize_value("kindness")
    msg = str(e.value)
    assert "'kindness'" in msg and all(v in msg for v in V.BASIC_VALUES)
    with pytest.raises(V.UnknownValueError, match=r"unknown micro-value 'bravery'.*daring"):
        V.normalize_micro_value("bravery")
