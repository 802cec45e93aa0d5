"""The `Taxonomy` object: the bundled Schwartz definition, names, structure, and definition errors."""

import textwrap

import numpy as np
import pytest

from vat.taxonomy import (
    Circle,
    Clusters,
    Taxonomy,
    TaxonomyError,
    UnknownValueError,
    Value,
    available,
    from_dict,
    load_taxonomy,
)

S = load_taxonomy("schwartz")


def test_schwartz_counts_per_value():
    counts = {v: len(S.micro_values_of(v)) for v in S.value_names}
    assert counts == {
        "self_direction": 5, "stimulation": 3, "hedonism": 2, "achievement": 6, "power": 5,
        "security": 7, "conformity": 4, "tradition": 6, "benevolence": 9, "universalism": 9,
    }  # fmt: skip
    assert len(S.micro_names) == 56 == len(set(S.micro_names))
    assert "schwartz" in available() and S.data == "vat_bundled.jsonl"


def test_schwartz_circumplex_order_and_groups():
    assert S.value_names == (
        "self_direction", "stimulation", "hedonism", "achievement", "power",
        "security", "conformity", "tradition", "benevolence", "universalism",
    )  # fmt: skip
    groups = dict(S.groups)
    assert [g for g, vs in groups.items() if "hedonism" in vs] == [
        "openness_to_change",
        "self_enhancement",
    ]
    assert {v for vs in groups.values() for v in vs} == set(S.value_names)


def test_schwartz_angles_and_distance():
    c = S.structure
    assert S.structure_kind == "circle" and isinstance(c, Circle)
    assert c.slot("conformity") == c.slot("tradition") == 6
    assert c.angle("self_direction") == 0.0
    assert c.angle("universalism") == 320.0
    assert c.angle("power") == 160.0
    assert c.distance("conformity", "tradition") == 0
    assert c.distance("self_direction", "universalism") == 1  # wraps around
    assert c.distance("power", "universalism") == 4  # |4 - 8| = 4
    assert c.distance("hedonism", "benevolence") == 4  # |2 - 7| = 5 -> 9 - 5
    assert c.distance("stimulation", "tradition") == 4  # |1 - 6| = 5 -> 4
    assert max(c.distance(u, v) for u in S.value_names for v in S.value_names) == 4
    # a micro-value sits at its value's angle
    np.testing.assert_allclose(S.angles(["helpful", "wealth"]), np.radians([280.0, 160.0]))
    assert S.cluster_labels(S.value_names) is None


@pytest.mark.parametrize(
    "spelling", ["self_direction", "Self-Direction", "self direction", " SELF-direction "]
)
def test_name_normalisation(spelling):
    assert S.normalize_value(spelling) == "self_direction"


def test_micro_value_normalisation_and_membership():
    assert S.normalize_micro_value("Honoring of Parents and Elders") == (
        "honoring_of_parents_and_elders"
    )
    assert S.value_of("Preserving my Public Image") == "power"
    assert S.value_of("a world at peace") == "universalism"
    assert S.micro_value("self_respect").gloss == "belief in one's own worth"
    assert S.label_of("self_direction") == "Self-Direction"
    assert S.label_of("a_world_at_peace") == "A World at Peace"


def test_unknown_name_lists_valid_ones():
    with pytest.raises(UnknownValueError) as e:
        S.normalize_value("kindness")
    msg = str(e.value)
    assert "'kindness'" in msg and all(v in msg for v in S.value_names)
    with pytest.raises(UnknownValueError, match=r"unknown schwartz micro-value 'bravery'.*daring"):
        S.normalize_micro_value("bravery")


def test_level_of():
    assert S.level_of(["Benevolence", "power"]) == (("benevolence", "power"), "basic")
    assert S.level_of(["helpful", "wealth"]) == (("helpful", "wealth"), "micro")
    with pytest.raises(UnknownValueError, match="all values or all micro-values"):
        S.level_of(["benevolence", "helpful"])
    with pytest.raises(ValueError, match="duplicate"):
        S.level_of(["power", "Power"])


def test_a_taxonomy_without_sub_items_or_structure():
    t = Taxonomy("toy", "Toy", tuple(Value(n, n.title(), "") for n in ("a", "b", "c")))
    assert t.value_names == t.micro_names == ("a", "b", "c")  # each value its own micro-value
    assert t.value_of("b") == "b" and t.micro_values_of("c") == ("c",)
    assert t.structure_kind == "none" and t.angles(["a"]) is None
    assert t.cluster_labels(["a"]) is None


def test_clusters():
    t = from_dict({
        "name": "toy", "values": [{"name": n} for n in ("a", "b", "c", "d", "e")],
        "structure": {"kind": "clusters", "clusters": {"x": ["a", "b"], "y": ["c", "d"]}},
    })  # fmt: skip
    assert isinstance(t.structure, Clusters) and t.structure_kind == "clusters"
    assert t.cluster_labels(["a", "c", "e"]) == ["x", "y", None]


@pytest.mark.parametrize(
    ("definition", "match"),
    [
        ({"name": "t"}, r"values: missing"),
        ({"name": "t", "values": [{"name": "a"}], "colour": 1}, r"\['colour'\]: unknown keys"),
        ({"name": "t", "values": [{"name": "A b"}]}, r"canonical snake_case.*'A b'"),
        ({"name": "t", "values": [{"name": "a"}, {"name": "a"}]}, r"duplicate names \['a'\]"),
        ({"name": "t", "values": [{"name": "a"}], "groups": {"g": ["z"]}},
         r"group 'g' names unknown values \['z'\]"),
        ({"name": "t", "values": [{"name": "a"}], "structure": {"kind": "sphere"}},
         r"structure.kind: expected circle, clusters or none"),
        ({"name": "t", "values": [{"name": "a"}, {"name": "b"}],
          "structure": {"kind": "circle", "n_slots": 4, "positions": {"a": 0}}},
         r"positions lacks \['b'\]"),
        ({"name": "t", "values": [{"name": "a"}, {"name": "b"}],
          "structure": {"kind": "clusters", "clusters": {"x": ["a"]}}},
         r"at least two clusters"),
    ],
)  # fmt: skip
def test_definition_errors_name_the_key(definition, match):
    with pytest.raises(TaxonomyError, match=match) as e:
        from_dict(definition, "my.yaml")
    assert str(e.value).startswith("my.yaml: ")


def test_load_from_path_and_unknown_name(tmp_path):
    f = tmp_path / "toy.yaml"
    f.write_text(
        textwrap.dedent("""\
        name: toy
        values:
          - {name: a, label: A, goal: first}
          - {name: b, label: B, goal: second}
    """)
    )
    t = load_taxonomy(path=str(f))
    assert t.value_names == ("a", "b") and t.goal("b") == "second"
    with pytest.raises(TaxonomyError, match=r"taxonomy.name=nope: no bundled definition.*schwartz"):
        load_taxonomy("nope")
    with pytest.raises(TaxonomyError, match=r"taxonomy.path=.*missing.yaml: file not found"):
        load_taxonomy(path=str(tmp_path / "missing.yaml"))


def test_parents_of_values_and_micro_values():
    assert S.parents(["Benevolence", "power"]) == ["benevolence", "power"]
    assert S.parents(["helpful", "wealth", "devout"]) == ["benevolence", "power", "tradition"]
    assert S.structure.slot(S.parents(["obedient"])[0]) == 6


def test_saved_states_are_read_with_the_given_taxonomy_when_the_saved_file_is_gone(tmp_path):
    """A pre-state cache entry outlives the user's taxonomy file it was saved with."""
    import pandas as pd

    from vat.probes.base import ProbeResult

    f = tmp_path / "toy.yaml"
    f.write_text("name: toy\nvalues: [{name: a}, {name: b}]\n")
    toy = load_taxonomy(path=str(f))
    units = pd.DataFrame({"scene_id": ["s0", "s0"], "value": ["a", "b"],
                          "micro_value": ["a", "b"], "score": [1.0, 2.0]})  # fmt: skip
    ProbeResult("likelihood", units.assign(pref=0.0), units, {}, toy).save(tmp_path / "state")
    f.unlink()
    load_taxonomy.cache_clear()
    with pytest.raises(TaxonomyError, match="file not found"):
        ProbeResult.load(tmp_path / "state")
    again = ProbeResult.load(tmp_path / "state", toy)
    assert again.taxonomy is toy and again.state()[1] == ["a", "b"]
