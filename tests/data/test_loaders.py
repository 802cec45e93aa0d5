"""`vat.data.loaders.load_items`: validation errors naming file, line and field, the skip policy's
report, missing and empty files, column mappings and the Hugging Face path."""

import pytest

from tests.data.helpers import row, valid_rows, write_csv, write_jsonl
from tests.schwartz import SCHWARTZ
from vat.data import DataError, load_items


def test_valid_jsonl_loads_and_derives_value(tmp_path):
    rows = valid_rows()
    for r in rows:
        del r["value"]  # derived from the micro-value
    items = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)), SCHWARTZ)
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
        ({"micro_value": "bravery"}, "micro_value", "unknown schwartz micro-value 'bravery'"),
        ({"value": "kindness"}, "value", "unknown schwartz value 'kindness'"),
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
        load_items(str(path), SCHWARTZ)
        return
    with pytest.raises(DataError) as e:
        load_items(str(path), SCHWARTZ)
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
        load_items(str(path), SCHWARTZ)


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
        load_items(str(path), SCHWARTZ)
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
        load_items(str(write_jsonl(tmp_path / "x.jsonl", rows)), SCHWARTZ)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match=r"empty.jsonl: no valid items \(empty file\)"):
        load_items(str(tmp_path / "empty.jsonl"), SCHWARTZ)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv: empty file"):
        load_items(str(tmp_path / "empty.csv"), SCHWARTZ)
    with pytest.raises(DataError, match=r"nope.jsonl: file not found"):
        load_items(str(tmp_path / "nope.jsonl"), SCHWARTZ)
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(DataError, match=r"unknown format 'txt'"):
        load_items(str(tmp_path / "a.txt"), SCHWARTZ)


def test_skip_policy_counts_and_reports_every_dropped_row(tmp_path):
    rows = valid_rows()
    rows[0]["action"] = ""  # line 1: empty; its partner (line 2) becomes unpaired
    rows[4]["polarity"] = "sideways"  # line 5: unknown polarity; partner line 6 unpaired
    rows[9]["id"] = rows[8]["id"]  # line 10: duplicate id; its partner (line 9) becomes unpaired
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    items = load_items(str(path), SCHWARTZ, on_invalid="skip")
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
        load_items(str(write_jsonl(tmp_path / "x.jsonl", rows)), SCHWARTZ, on_invalid="skip")


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
        str(path),
        SCHWARTZ,
        columns=cols,
        scenario_template="In {country}, a question of {domain} comes up.",
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
    items = load_items("json", SCHWARTZ, format="hf", data_files=str(path), columns=cols)
    assert len(items) == 8 and len(items.scenes()) == 2
    assert {it.value for it in items} == {"benevolence", "security"}
    assert items.items[0].id == "aHonestpositive"


def test_hf_loader_offline_gives_clear_error():
    with pytest.raises(
        DataError,
        match=r"could not load Hugging Face dataset 'Tinyhope/Value_Alignment_Tax'.*run once with network",
    ):
        load_items("Tinyhope/Value_Alignment_Tax", SCHWARTZ, format="hf")
