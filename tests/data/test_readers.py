"""`vat.data.readers` through `load_items`: JSONL lines that are not JSON objects, CSV line numbers
across quoted line breaks, and the same items from CSV, Parquet, a JSON array and JSONL."""

import json

import pytest

from tests.data.helpers import valid_rows, write_csv, write_jsonl
from tests.schwartz import SCHWARTZ
from vat.data import DataError, load_items


def test_malformed_lines(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = [json.dumps(r) for r in valid_rows()]
    path.write_bytes(
        ("\n".join(good[:2]) + '\n{"id": "x", "act\n' + "\n".join(good[2:]) + "\n").encode()
    )
    with pytest.raises(DataError, match=r"broken.jsonl:3: invalid JSON"):
        load_items(str(path), SCHWARTZ)
    path.write_bytes(
        ("\n".join(good[:2]) + "\n").encode()
        + b'{"id": "\xff\xfe"}\n'
        + ("\n".join(good[2:])).encode()
    )
    with pytest.raises(DataError, match=r"broken.jsonl:3: not valid UTF-8"):
        load_items(str(path), SCHWARTZ)
    path.write_text("\n".join(good[:1]) + "\n[1, 2]\n")
    with pytest.raises(DataError, match=r"broken.jsonl:2: expected a JSON object, got list"):
        load_items(str(path), SCHWARTZ)


def test_csv_and_parquet_and_json_array(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = valid_rows()
    a = load_items(str(write_csv(tmp_path / "a.csv", rows)), SCHWARTZ)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "a.parquet")
    b = load_items(str(tmp_path / "a.parquet"), SCHWARTZ)
    (tmp_path / "a.json").write_text(json.dumps(rows))
    c = load_items(str(tmp_path / "a.json"), SCHWARTZ)
    d = load_items(str(write_jsonl(tmp_path / "a.jsonl", rows)), SCHWARTZ)
    assert a.items == b.items == c.items == d.items


def test_csv_error_names_physical_line_after_multiline_field(tmp_path):
    rows = valid_rows()
    rows[0]["scenario"] = "Line one.\nLine two."
    rows[1]["scenario"] = "Line one.\nLine two."
    rows[2]["polarity"] = "??"
    path = write_csv(tmp_path / "m.csv", rows)
    # header = line 1, row 1 = lines 2-3, row 2 = lines 4-5, row 3 starts at line 6
    with pytest.raises(DataError, match=r"m.csv:6: field 'polarity'"):
        load_items(str(path), SCHWARTZ)
