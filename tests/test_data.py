"""The data layer: loaders, validation errors (file, line, field), skip reports, splits."""

import csv
import json

import pytest

from vat import values as V
from vat.data import BUNDLED, DataError, Item, load_items
from vat.data.splits import assign_splits


def row(scene="s1", micro="helpful", pol="express", **kw):
    r = {
        "id": f"{scene}-{micro}-{pol}",
        "scene_id": scene,
        "country": "Canada",
        "domain": "Health and Health Care",
        "scenario": f"Scenario of {scene}.",
        "value": V.basic_value_of(micro),
        "micro_value": micro,
        "polarity": pol,
        "action": f"I act ({micro}, {pol}) in {scene}.",
    }
    r.update(kw)
    return {k: v for k, v in r.items() if v is not ...}


def valid_rows(n_scenes=4):
    return [
        row(f"s{i}", m, p)
        for i in range(n_scenes)
        for m in ("helpful", "daring")
        for p in ("express", "suppress")
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, rows):
    fields = list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def test_valid_jsonl_loads_and_derives_value(tmp_path):
    rows = valid_rows()
    for r in rows:
        del r["value"]  # derived from the micro-value
    items = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)))
    assert len(items) == 16
    assert {it.value for it in items} == {"benevolence", "stimulation"}
    assert items.report.n_dropped == 0
    assert len(items.pairs()) == 8


@pytest.mark.parametrize(
    ("bad", "field", "needle"),
    [
        ({"action": ...}, "action", "missing (expected column 'action')"),
        ({"micro_value": ...}, "micro_value", "missing"),
        ({"action": "   "}, "action", "empty text"),
        ({"scenario": ""}, "scenario", "empty text"),
        ({"micro_value": "bravery"}, "micro_value", "unknown micro-value 'bravery'"),
        ({"value": "kindness"}, "value", "unknown Schwartz value 'kindness'"),
        ({"value": "power"}, "micro_value", "'daring' belongs to 'stimulation', not to 'power'"),
        ({"polarity": "maybe"}, "polarity", "unknown polarity 'maybe'"),
        ({"action": 42}, None, None),  # numbers are accepted as text: no error
        ({"action": ["x"]}, "action", "expected a string, got list"),
        ({"split": "dev"}, "split", "unknown split 'dev'"),
    ],
)
def test_row_errors_name_file_line_field(tmp_path, bad, field, needle):
    rows = valid_rows()
    rows[2].update(bad)
    rows[2] = {k: v for k, v in rows[2].items() if v is not ...}
    if "split" in bad:
        for r in rows:
            r.setdefault("split", "train")
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    if field is None:
        load_items(str(path))
        return
    with pytest.raises(DataError) as e:
        load_items(str(path))
    assert e.value.line == 3 and e.value.field == field
    assert str(e.value).startswith(f"{path}:3: field '{field}':")
    assert needle in str(e.value)


def test_duplicate_id_names_both_lines(tmp_path):
    rows = valid_rows()
    rows[5]["id"] = rows[1]["id"]
    path = write_jsonl(tmp_path / "dup.jsonl", rows)
    with pytest.raises(
        DataError,
        match=r"dup.jsonl:6: field 'id': duplicate id 's0-helpful-suppress' \(first at line 2\)",
    ):
        load_items(str(path))


def test_unpaired_action(tmp_path):
    rows = [
        r
        for r in valid_rows()
        if not (
            r["scene_id"] == "s1" and r["micro_value"] == "daring" and r["polarity"] == "suppress"
        )
    ]
    path = write_jsonl(tmp_path / "unpaired.jsonl", rows)
    with pytest.raises(DataError) as e:
        load_items(str(path))
    assert e.value.line == 7 and e.value.field == "polarity"
    assert (
        "unpaired action: scene 's1', micro_value 'daring' has a 'express' action but no 'suppress'"
        in str(e.value)
    )


def test_scene_with_two_scenarios(tmp_path):
    rows = valid_rows()
    rows[3]["scenario"] = "Another text."
    with pytest.raises(
        DataError, match=r":4: field 'scenario': scene 's0' has a different scenario text at line 1"
    ):
        load_items(str(write_jsonl(tmp_path / "x.jsonl", rows)))


def test_malformed_lines(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = [json.dumps(r) for r in valid_rows()]
    path.write_bytes(
        ("\n".join(good[:2]) + '\n{"id": "x", "act\n' + "\n".join(good[2:]) + "\n").encode()
    )
    with pytest.raises(DataError, match=r"broken.jsonl:3: invalid JSON"):
        load_items(str(path))
    path.write_bytes(
        ("\n".join(good[:2]) + "\n").encode()
        + b'{"id": "\xff\xfe"}\n'
        + ("\n".join(good[2:])).encode()
    )
    with pytest.raises(DataError, match=r"broken.jsonl:3: not valid UTF-8"):
        load_items(str(path))
    path.write_text("\n".join(good[:1]) + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: expected a JSON object, got list"):
        load_items(str(path))


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match=r"empty.jsonl: no valid items \(empty file\)"):
        load_items(str(tmp_path / "empty.jsonl"))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv: empty file"):
        load_items(str(tmp_path / "empty.csv"))
    with pytest.raises(DataError, match=r"nope.jsonl: file not found"):
        load_items(str(tmp_path / "nope.jsonl"))
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown format 'txt'"):
        load_items(str(tmp_path / "a.txt"))


def test_skip_policy_counts_and_reports_every_dropped_row(tmp_path):
    rows = valid_rows()
    rows[0]["action"] = ""  # line 1: empty; its partner (line 2) becomes unpaired
    rows[4]["polarity"] = "sideways"  # line 5: unknown polarity; partner line 6 unpaired
    rows[9]["id"] = rows[8]["id"]  # line 10: duplicate id; its partner (line 9) becomes unpaired
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    items = load_items(str(path), on_invalid="skip")
    rep = items.report
    dropped = {(d.line, d.field) for d in rep.dropped}
    assert dropped == {
        (1, "action"),
        (2, "polarity"),
        (5, "polarity"),
        (6, "polarity"),
        (10, "id"),
        (9, "polarity"),
    }
    assert rep.n_rows == 16 and rep.n_items == 10 and rep.n_dropped == 6
    assert rep.n_rows == rep.n_items + rep.n_dropped  # nothing disappears silently
    text = rep.summary()
    assert "read 16 rows, loaded 10 items, dropped 6 (on_invalid=skip)" in text
    assert "line 1: action: empty text" in text


def test_all_rows_invalid_is_an_error_even_when_skipping(tmp_path):
    rows = [row(f"s{i}", "helpful", "express") for i in range(3)]
    with pytest.raises(DataError, match=r"no valid items \(3 rows dropped"):
        load_items(str(write_jsonl(tmp_path / "x.jsonl", rows)), on_invalid="skip")


def test_csv_and_parquet_and_json_array(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = valid_rows()
    a = load_items(str(write_csv(tmp_path / "a.csv", rows)))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    b = load_items(str(tmp_path / "a.parquet"))
    (tmp_path / "a.json").write_text(json.dumps(rows))
    c = load_items(str(tmp_path / "a.json"))
    d = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)))
    assert a.items == b.items == c.items == d.items


def test_csv_error_names_physical_line_after_multiline_field(tmp_path):
    rows = valid_rows()
    rows[0]["scenario"] = "Line one.\nLine two."
    rows[1]["scenario"] = "Line one.\nLine two."
    rows[2]["polarity"] = "??"
    path = write_csv(tmp_path / "m.csv", rows)
    # header = line 1, row 1 = lines 2-3, row 2 = lines 4-5, row 3 starts at line 6
    with pytest.raises(DataError, match=r"m.csv:6: field 'polarity'"):
        load_items(str(path))


def test_column_mapping_polarity_vocabulary_and_scenario_template(tmp_path):
    """Predecessor-style data: no scenario text, no scene id, its own column and label names."""
    rows = [
        {
            "country": c,
            "topic": "Religion",
            "micro_value": m,
            "schwartz_value": v,
            "label": p,
            "text": f"I do {m} {p} in {c}.",
        }
        for c in ("Egypt", "France", "Uganda")
        for m, v in (("Devout", "Tradition"), ("Wealth", "Power"))
        for p in ("support", "violate")
    ]
    path = write_csv(tmp_path / "pred.csv", rows)
    cols = {"id": None, "scene_id": None, "scenario": None, "domain": "topic", "value": "schwartz_value",
            "polarity": "label", "action": "text", "split": None}  # fmt: skip
    items = load_items(
        str(path), columns=cols, scenario_template="In {country}, a question of {domain} comes up."
    )
    it = items.items[0]
    assert it.scenario == "In Egypt, a question of Religion comes up."
    assert it.scene_id == "egypt/religion" and it.id == "line2" and it.polarity == "express"
    assert it.micro_value == "devout" and it.value == "tradition"
    assert len(items.scenes()) == 3 and len(items.pairs()) == 6


def test_hf_loader_mapping_on_local_file(tmp_path):
    """The Hub code path (`datasets.load_dataset`) with a mapping, on a local JSON file."""
    rows = [
        {"uid": f"{s}{m}{p}", "nation": "India", "area": "Politics", "context": f"Context {s}.",
         "micro": m, "stance": p, "response": f"I {m} {p} {s}"}
        for s in "ab" for m in ("Honest", "Clean") for p in ("positive", "negative")
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "hub.jsonl", rows)
    cols = {"id": "uid", "scene_id": None, "country": "nation", "domain": "area", "scenario": "context",
            "value": None, "micro_value": "micro", "polarity": "stance", "action": "response", "split": None}  # fmt: skip
    items = load_items("json", format="hf", data_files=str(path), columns=cols)
    assert len(items) == 8 and len(items.scenes()) == 2
    assert {it.value for it in items} == {"benevolence", "security"}
    assert items.items[0].id == "aHonestpositive"


def test_hf_loader_offline_gives_clear_error():
    with pytest.raises(
        DataError,
        match=r"could not load Hugging Face dataset 'Tinyhope/Value_Alignment_Tax'.*run once with network",
    ):
        load_items("Tinyhope/Value_Alignment_Tax", format="hf")


def _items(n_scenes):
    return [
        Item(f"{s}-{p}", f"scene{s}", "c", "d", "x", "power", "wealth", p, "a")
        for s in range(n_scenes)
        for p in ("express", "suppress")
    ]


def test_split_is_scene_level_and_deterministic():
    items = _items(20)
    a = assign_splits(items, test_fraction=0.3, seed=3)
    b = assign_splits(items, test_fraction=0.3, seed=3)
    c = assign_splits(items, test_fraction=0.3, seed=4)
    assert [i.split for i in a] == [i.split for i in b]
    assert [i.split for i in a] != [i.split for i in c]
    test_scenes = {i.scene_id for i in a if i.split == "test"}
    train_scenes = {i.scene_id for i in a if i.split == "train"}
    assert len(test_scenes) == 6 and not test_scenes & train_scenes and len(train_scenes) == 14


def test_split_column_honoured_and_checked():
    items = [
        Item(
            i.id,
            i.scene_id,
            "c",
            "d",
            "x",
            "power",
            "wealth",
            i.polarity,
            "a",
            "test" if i.scene_id == "scene0" else "train",
        )
        for i in _items(3)
    ]
    out = assign_splits(items, test_fraction=0.5, seed=0)
    assert {i.scene_id for i in out if i.split == "test"} == {"scene0"}
    mixed = [
        *items[:-1],
        Item("z", "scene0", "c", "d", "x", "power", "wealth", "suppress", "a", "train"),
    ]
    with pytest.raises(DataError, match="1 scenes have items in both train and test"):
        assign_splits(mixed, test_fraction=0.5, seed=0)
    partial = [
        *items[:-1],
        Item("z", "scene2", "c", "d", "x", "power", "wealth", "suppress", "a", None),
    ]
    with pytest.raises(DataError, match="1 of 6 items have no split"):
        assign_splits(partial, test_fraction=0.5, seed=0)


def test_selectors_on_bundled():
    items = load_items(BUNDLED, test_fraction=0.3, seed=0)
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
    items = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)))
    with pytest.raises(
        DataError, match=r"held-out split has no scene for values \['self_direction', 'hedonism'"
    ):
        items.heldout()
