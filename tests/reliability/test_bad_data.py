"""Bad data: randomly corrupted JSONL/CSV files either load, fail with a `DataError` naming the file
and line, or (``on_invalid=skip``) drop rows that the `LoadReport` counts. Nothing else, and no row
disappears silently.

The property test starts from three whole scenes of the bundled data (60 rows: ten values, both
polarities each) and applies one to three random corruptions: truncated lines, wrong types, unknown
names, invalid UTF-8, control characters, duplicated/deleted/swapped/joined lines, duplicated ids and
keys, missing keys and columns, extra keys and columns, blank lines, a BOM, CRLF line ends, huge
numbers, deep nesting, lone surrogates. Each corrupted file is loaded with ``on_invalid=error`` and
``on_invalid=skip``; `N_EXAMPLES` inputs per format, the same ones every run (a fixed seed).

Whole-set problems that ``skip`` cannot skip (they raise `DataError` without a line, or at the CSV
header line): no valid item left, an empty file, a CSV without a header row or with a broken one,
too few scenes to split, a split column that is partial or not scene-level.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests import schwartz as V
from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, DataError, ItemSet, bundled_path, load_items
from vat.data.schema import ITEM_FIELDS, POLARITIES
from vat.preflight import check_items

SCENES = ("scene_000", "scene_001", "scene_002")
FIELDS = (*ITEM_FIELDS, "nonexistent")
#: DataError reasons that are about the whole file, not one row: `skip` cannot skip them.
WHOLE_SET = (
    "no valid items",
    "empty file",
    "need at least 2 scenes",
    "items have no split",
    "scenes have items in both train and test",
)
N_EXAMPLES = 500  # per format; the closing line of each test prints how many were tried
TRIED: Counter = Counter()


# ------------------------------------------------------------------------------ the valid data
@functools.cache
def _bundled_scenes() -> tuple[str, ...]:
    lines = bundled_path(SCHWARTZ).read_text(encoding="utf-8").splitlines()
    return tuple(t for t in lines if json.loads(t)["scene_id"] in SCENES)


def base_rows(with_split: bool) -> list[dict]:
    """Three whole bundled scenes: every value, an express and a suppress action each."""
    rows = [json.loads(t) for t in _bundled_scenes()]
    if with_split:
        for r in rows:
            r["split"] = "test" if r["scene_id"] == SCENES[0] else "train"
    return rows


def csv_line(cells: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue().encode("utf-8")


def dump(row: dict) -> bytes:
    """One JSONL line, non-ASCII text as UTF-8 (so truncation can cut a character in two)."""
    return json.dumps(row, ensure_ascii=False).encode("utf-8", "surrogatepass")


def parse_csv_line(line: bytes) -> list[str] | None:
    try:
        records = list(csv.reader(io.StringIO(line.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error):
        return None
    return records[0] if len(records) == 1 else None


@dataclass
class Doc:
    """A data file as physical lines (no line ends), so corruptions can address lines."""

    fmt: str  # "jsonl" | "csv"
    lines: list[bytes]
    eol: bytes = b"\n"
    final_eol: bool = True
    bom: bool = False
    applied: list[str] = field(default_factory=list)

    @classmethod
    def make(cls, fmt: str, with_split: bool) -> Doc:
        rows = base_rows(with_split)
        if fmt == "jsonl":
            return cls(fmt, [dump(r) for r in rows])
        header = list(rows[0])
        return cls(fmt, [csv_line(header), *(csv_line([r[k] for k in header]) for r in rows)])

    def to_bytes(self) -> bytes:
        body = self.eol.join(self.lines) + (self.eol if self.final_eol and self.lines else b"")
        return (b"\xef\xbb\xbf" if self.bom else b"") + body

    # ---------------------------------------------------------------- field-level access
    def header(self) -> list[str] | None:
        return parse_csv_line(self.lines[0]) if self.fmt == "csv" and self.lines else None

    def get_row(self, i: int) -> dict | list | None:
        """The row at line i as a dict (JSONL) or a cell list (CSV); None if it does not parse."""
        if self.fmt == "jsonl":
            try:
                row = json.loads(self.lines[i].decode("utf-8"))
            except (ValueError, RecursionError):
                return None
            return row if isinstance(row, dict) else None
        return parse_csv_line(self.lines[i]) if i > 0 else None

    def set_field(self, i: int, name: str, value: object) -> None:
        row = self.get_row(i)
        if isinstance(row, dict):
            row[name] = value
            self.lines[i] = dump(row)
        elif row is not None and (h := self.header()) and name in h and len(row) == len(h):
            row[h.index(name)] = value if isinstance(value, str) else json.dumps(value)
            self.lines[i] = csv_line(row)


# ------------------------------------------------------------------------------ corruptions
WRONG_TYPES = {
    "int": 7,
    "float": 2.5,
    "bool": True,
    "list": ["a", "b"],
    "null": None,
    "object": {"k": "v"},
    "empty": "",
    "spaces": "   ",
    "nan": float("nan"),
    "inf": float("inf"),
}
BAD_BYTES = (b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82")
CONTROL = ("\r", "\x00", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\ufeff", '"', ",", "{", "\\")
BLANKS = (b"", b"   ", b"\t", b"\r", b",,,")
text = st.text(st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=12)
idx = st.integers(0, 10_000)
corruption = st.one_of(
    st.tuples(st.just("truncate"), idx, idx),
    st.tuples(st.just("wrong_type"), idx, st.sampled_from(FIELDS), st.sampled_from(sorted(WRONG_TYPES))),
    st.tuples(st.just("unknown"), idx, st.sampled_from(("value", "micro_value", "polarity", "split", "scene_id", "id")), text),
    st.tuples(st.just("bad_bytes"), idx, idx, st.sampled_from(BAD_BYTES)),
    st.tuples(st.just("control"), idx, idx, st.sampled_from(CONTROL)),
    st.tuples(st.just("duplicate"), idx, idx),
    st.tuples(st.just("delete"), idx),
    st.tuples(st.just("join"), idx),
    st.tuples(st.just("swap"), idx, idx),
    st.tuples(st.just("dup_id"), idx, idx),
    st.tuples(st.just("drop_key"), idx, st.sampled_from(ITEM_FIELDS)),
    st.tuples(st.just("drop_column"), st.sampled_from(ITEM_FIELDS), st.booleans()),
    st.tuples(st.just("extra_key"), idx, text),
    st.tuples(st.just("extra_column"), text),
    st.tuples(st.just("blank"), idx, st.sampled_from(BLANKS)),
    st.tuples(st.just("bom")),
    st.tuples(st.just("crlf"), st.one_of(st.none(), idx)),
    st.tuples(st.just("no_final_eol")),
    st.tuples(st.just("huge_number"), idx, st.sampled_from(ITEM_FIELDS)),
    st.tuples(st.just("deep_nesting"), idx, st.sampled_from(ITEM_FIELDS)),
    st.tuples(st.just("surrogate"), idx, st.sampled_from(("action", "scenario", "country"))),
    st.tuples(st.just("other_scenario"), idx, text),
    st.tuples(st.just("dup_key"), idx, st.sampled_from(ITEM_FIELDS), text),
)  # fmt: skip


def corrupt(doc: Doc, op: tuple) -> None:
    """Apply one corruption in place; line and byte indices wrap around the current sizes."""
    name, *args = op
    doc.applied.append(repr(op))
    n = len(doc.lines)
    if n == 0:
        return
    line = args[0] % n if args and isinstance(args[0], int) else 0
    if name == "truncate":
        doc.lines[line] = doc.lines[line][: args[1] % (len(doc.lines[line]) + 1)]
    elif name == "wrong_type":
        doc.set_field(line, args[1], WRONG_TYPES[args[2]])
    elif name == "unknown":
        doc.set_field(line, args[1], args[2])
    elif name in ("bad_bytes", "control"):
        raw = doc.lines[line]
        at = args[1] % (len(raw) + 1)
        insert = args[2] if name == "bad_bytes" else args[2].encode("utf-8")
        doc.lines[line] = raw[:at] + insert + raw[at:]
    elif name == "duplicate":
        doc.lines.insert(args[1] % (n + 1), doc.lines[line])
    elif name == "delete":
        del doc.lines[line]
    elif name == "join" and line + 1 < n:  # a lost line break
        doc.lines[line : line + 2] = [doc.lines[line] + doc.lines[line + 1]]
    elif name == "swap":
        other = args[1] % n
        doc.lines[line], doc.lines[other] = doc.lines[other], doc.lines[line]
    elif name == "dup_id":
        row = doc.get_row(args[1] % n)
        source_id = row.get("id") if isinstance(row, dict) else None
        if doc.fmt == "csv" and isinstance(row, list) and (h := doc.header()) and "id" in h:
            source_id = row[h.index("id")] if len(row) == len(h) else None
        if source_id is not None:
            doc.set_field(line, "id", source_id)
    elif name == "drop_key":
        _drop_key(doc, line, args[1])
    elif name == "drop_column":
        _drop_column(doc, args[0], header_only=args[1])
    elif name == "extra_key":
        _add_key(doc, line, "extra_" + args[1], args[1])
    elif name == "extra_column":
        _add_column(doc, "extra_" + args[0], args[0])
    elif name == "blank":
        doc.lines.insert(line, args[1])
    elif name == "bom":
        doc.bom = True
    elif name == "crlf":
        if args[0] is None:
            doc.eol = b"\r\n"
        else:
            doc.lines[line] += b"\r"
    elif name == "no_final_eol":
        doc.final_eol = False
    elif name == "huge_number":
        _set_raw(doc, line, args[1], "9" * 5000)
    elif name == "deep_nesting":
        _set_raw(doc, line, args[1], "[" * 3000 + "]" * 3000)
    elif name == "surrogate":
        _set_raw(doc, line, args[1], '"bad \\ud800 text"')
    elif name == "other_scenario":
        doc.set_field(line, "scenario", "Another scenario. " + args[1])
    elif name == "dup_key":
        _dup_key(doc, line, args[1], args[2])


def _set_raw(doc: Doc, i: int, name: str, json_text: str) -> None:
    """JSONL: put raw JSON text as a field's value (what `json.dumps` cannot write)."""
    row = doc.get_row(i)
    if doc.fmt == "jsonl" and isinstance(row, dict):
        row[name] = "\x00MARK\x00"
        doc.lines[i] = json.dumps(row).replace('"\\u0000MARK\\u0000"', json_text).encode()
    else:
        doc.set_field(i, name, json_text)


def _dup_key(doc: Doc, i: int, name: str, value: str) -> None:
    """JSONL: a key given twice in one object. CSV: a header names a column twice."""
    if doc.fmt == "jsonl" and doc.lines[i].endswith(b"}"):
        extra = json.dumps({name: value}, ensure_ascii=False)[1:-1].encode()
        doc.lines[i] = doc.lines[i][:-1] + b", " + extra + b"}"
    elif (h := doc.header()) and name in h and len(h) > 1:
        h[(h.index(name) + 1) % len(h)] = name
        doc.lines[0] = csv_line(h)


def _drop_key(doc: Doc, i: int, name: str) -> None:
    row = doc.get_row(i)
    if isinstance(row, dict):
        row.pop(name, None)
        doc.lines[i] = dump(row)
    elif row is not None and (h := doc.header()) and name in h and len(row) == len(h):
        del row[h.index(name)]  # one row loses a cell: its columns no longer line up
        doc.lines[i] = csv_line(row)


def _drop_column(doc: Doc, name: str, header_only: bool) -> None:
    if doc.fmt == "jsonl":
        for i in range(len(doc.lines)):
            _drop_key(doc, i, name)
        return
    h = doc.header()
    if not h or name not in h:
        return
    col = h.index(name)
    for i in range(len(doc.lines)) if not header_only else [0]:
        cells = parse_csv_line(doc.lines[i])
        if cells is not None and len(cells) == len(h):
            del cells[col]
            doc.lines[i] = csv_line(cells)


def _add_key(doc: Doc, i: int, name: str, value: str) -> None:
    row = doc.get_row(i)
    if isinstance(row, dict):
        row[name] = value
        doc.lines[i] = dump(row)
    elif isinstance(row, list):
        doc.lines[i] = csv_line([*row, value])  # one row with a cell too many


def _add_column(doc: Doc, name: str, value: str) -> None:
    if doc.fmt == "jsonl":
        for i in range(len(doc.lines)):
            _add_key(doc, i, name, value)
        return
    for i, raw in enumerate(doc.lines):
        cells = parse_csv_line(raw)
        if cells is not None:
            doc.lines[i] = csv_line([*cells, name if i == 0 else value])


# ------------------------------------------------------------------------------ the oracle
def _decoded_lines(raw: bytes) -> list[str]:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return [ln.decode("utf-8", "replace").rstrip("\r") for ln in raw.split(b"\n")]


def data_lines(raw: bytes, fmt: str) -> list[int]:
    """Line numbers (from 1) of the rows a loader must account for: non-blank, not the CSV header.

    JSONL: a line of only whitespace is blank. CSV: also a line of only commas and whitespace (an
    empty spreadsheet row); the header is the first non-blank line. The base data has no quoted
    line breaks, so every other line is one row.
    """
    lines = _decoded_lines(raw)
    blank = re.compile(r"\s*" if fmt == "jsonl" else r"[\s,]*")
    numbers = [n for n, t in enumerate(lines, 1) if not blank.fullmatch(t)]
    return numbers[1:] if fmt == "csv" else numbers


def check_data_error(e: DataError, path: Path, raw: bytes, fmt: str, *, skipping: bool) -> None:
    msg = str(e)
    assert msg.startswith(str(path)), f"the message does not start with the file: {msg}"
    assert e.source == str(path)
    n_lines = len(_decoded_lines(raw))
    if e.line is None:
        assert any(w in msg for w in WHOLE_SET), f"no line for a row-level problem: {msg}"
        return
    assert 1 <= e.line <= n_lines, f"line {e.line} is outside the file ({n_lines} lines): {msg}"
    assert msg.startswith(f"{path}:{e.line}:")
    if skipping:  # with a line, only a broken CSV header may stop a skipping load
        assert fmt == "csv" and e.line not in data_lines(raw, fmt), msg
    assert e.reason.strip(), msg


def check_items_valid(items: ItemSet) -> None:
    ids = [it.id for it in items]
    assert len(ids) == len(set(ids))
    for it in items:
        assert it.value in V.BASIC_VALUES and it.micro_value in V.MICRO_VALUES
        assert V.MICRO[it.micro_value].value == it.value
        assert it.polarity in POLARITIES and it.split in ("train", "test")
        for text_ in (it.id, it.scene_id, it.country, it.domain, it.scenario, it.action):
            assert isinstance(text_, str) and text_.strip()
            text_.encode("utf-8")  # no lone surrogates
    pols: dict[tuple, set] = {}
    for it in items:
        pols.setdefault((it.scene_id, it.micro_value), set()).add(it.polarity)
    assert all(p == set(POLARITIES) for p in pols.values()), "an unpaired action was kept"
    try:
        items.heldout()
    except DataError as e:
        assert items.report is not None and str(e).startswith(items.report.source), str(e)


def load(path: Path, on_invalid: str) -> ItemSet | DataError:
    try:
        return load_items(str(path), SCHWARTZ, on_invalid=on_invalid)
    except DataError as e:
        return e


def check_corrupted(doc: Doc, path: Path) -> None:
    raw = doc.to_bytes()
    path.write_bytes(raw)
    expected = data_lines(raw, doc.fmt)
    strict, lenient = load(path, "error"), load(path, "skip")

    if isinstance(strict, DataError):
        check_data_error(strict, path, raw, doc.fmt, skipping=False)
    else:
        rep = strict.report
        assert rep.n_rows == len(expected) == rep.n_items == len(strict) and not rep.dropped
        check_items_valid(strict)

    if isinstance(lenient, DataError):
        check_data_error(lenient, path, raw, doc.fmt, skipping=True)
        assert not isinstance(strict, ItemSet), "skip failed where error loaded"
        return
    rep = lenient.report
    assert rep.n_rows == len(expected), f"read {rep.n_rows} rows of {len(expected)} data lines"
    assert rep.n_items == len(lenient) and rep.n_items + rep.n_dropped == rep.n_rows
    dropped_lines = [d.line for d in rep.dropped]
    assert len(set(dropped_lines)) == len(dropped_lines), "a row was dropped twice"
    assert set(dropped_lines) <= set(expected), "a dropped line is not a data line"
    assert all(d.reason.strip() for d in rep.dropped)
    check_items_valid(lenient)
    if isinstance(strict, ItemSet):
        assert lenient.items == strict.items and not rep.dropped
    elif strict.line is not None and strict.line in expected:
        assert (strict.line, strict.field) in {(d.line, d.field) for d in rep.dropped}, (
            f"error raised {strict} but skip did not drop that row: {rep.summary()}"
        )


# ------------------------------------------------------------------------------ the property
def run_fuzz(fmt: str, tmp: Path) -> None:
    """Counts the inputs in `TRIED`: all of them, and those that differ from the valid file."""
    valid = {split: Doc.make(fmt, split).to_bytes() for split in (False, True)}

    @seed(zlib.crc32(fmt.encode()))  # fixed per format: every run tries the same inputs
    @settings(max_examples=N_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(with_split=st.booleans(), ops=st.lists(corruption, min_size=1, max_size=3))
    def prop(with_split: bool, ops: list[tuple]) -> None:
        doc = Doc.make(fmt, with_split)
        for op in ops:
            corrupt(doc, op)
        TRIED[fmt] += 1
        TRIED[fmt, "changed"] += doc.to_bytes() != valid[with_split]
        check_corrupted(doc, tmp / f"data.{fmt}")

    prop()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_corrupted_files_fail_clearly_or_are_counted(fmt, tmp_path, record_property, capsys):
    TRIED[fmt] = TRIED[fmt, "changed"] = 0
    run_fuzz(fmt, tmp_path)
    n, changed = TRIED[fmt], TRIED[fmt, "changed"]
    record_property("corrupted_inputs", n)
    record_property("corrupted_inputs_changed", changed)
    with capsys.disabled():  # shown with or without -s
        print(f"\n[bad-data fuzz] {fmt}: {n} corrupted inputs tried, {changed} differ from the "
              "valid file", flush=True)  # fmt: skip
    assert n == N_EXAMPLES and changed >= 0.9 * n  # hypothesis really generated the inputs


# ------------------------------------------------------------------------------ fixed cases
def write(path: Path, rows: list[dict]) -> Path:
    """Rows as JSONL or (by the suffix) CSV with the first row's keys as the header."""
    if path.suffix == ".csv":
        header = list(rows[0])
        lines = [csv_line(header), *(csv_line([r[k] for k in header]) for r in rows)]
    else:
        lines = [dump(r) for r in rows]
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("a.jsonl", b"", "no valid items (empty file): it has no data rows"),
        ("a.jsonl", b"\n  \n\t\r\n", "no valid items (empty file)"),
        ("a.csv", b"", "empty file (0 bytes): expected a header row and item rows"),
        ("a.csv", b"\n \r\n\n", "empty file (only blank lines): expected a header row"),
        ("a.csv", b"\xef\xbb\xbfid,scene_id,action\r\n", "no valid items (empty file)"),
        ("a.csv", b"id,scene_id,action\n,,\n\n", "only blank lines or a header"),
    ],
)
@pytest.mark.parametrize("on_invalid", ["error", "skip"])
def test_empty_files_name_the_file(tmp_path, name, content, needle, on_invalid):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_items(str(path), SCHWARTZ, on_invalid=on_invalid)
    assert str(e.value).startswith(f"{path}: ") and needle in str(e.value)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        load_items(str(tmp_path / "nope.csv"), SCHWARTZ)


@pytest.mark.parametrize(
    ("raw", "field_", "needle"),
    [
        ('"action": ["a"]', "action", "expected a string, got list"),
        ('"action": {"k": 1}', "action", "expected a string, got dict"),
        ('"action": true', "action", "expected a string, got bool"),
        ('"action": NaN', "action", "missing (expected column 'action')"),
        ('"action": Infinity', "action", "expected a string, got float inf"),
        ('"action": "a \\ud800 b"', "action", "not valid Unicode text (a lone surrogate"),
        ('"action": ' + "9" * 5000, None, "invalid JSON (Exceeds the limit"),
        ('"action": ' + "[" * 5000 + "]" * 5000, None, "invalid JSON (nested too deeply)"),
        ('"polarity": "sideways"', "polarity", "unknown polarity 'sideways'; expected one of"),
        ('"micro_value": 7', "micro_value", "unknown schwartz micro-value '7'; expected one of"),
        (
            '"polarity": "suppress", "polarity": "express"',
            None,
            "keys ['polarity'] appear more than once",
        ),
    ],
)
def test_row_errors_name_file_line_field_and_what_was_expected(tmp_path, raw, field_, needle):
    rows = base_rows(False)
    path = write(tmp_path / "a.jsonl", rows)
    lines = path.read_bytes().split(b"\n")
    del rows[4][json.loads("{" + raw.split(":")[0] + ": 0}").popitem()[0]]
    lines[4] = dump(rows[4])[:-1] + b", " + raw.encode() + b"}"  # line 5 gets the raw JSON
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError) as e:
        load_items(str(path), SCHWARTZ)
    where = f"{path}:5:" + (f" field '{field_}':" if field_ else "")
    assert str(e.value).startswith(where) and needle in str(e.value), str(e.value)[:300]
    skipped = load_items(str(path), SCHWARTZ, on_invalid="skip").report
    assert (5, field_) in {(d.line, d.field) for d in skipped.dropped}
    assert skipped.n_items + skipped.n_dropped == skipped.n_rows == len(rows)


def test_csv_unclosed_quote_costs_one_row_not_the_rest_of_the_file(tmp_path):
    rows = base_rows(False)
    path = write(tmp_path / "a.csv", rows)
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3][: lines[3].index(b'"') + 10]  # cut inside the quoted scenario
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(
        DataError, match=r"a\.csv:4: a quoted field opened on this line runs on into line"
    ):
        load_items(str(path), SCHWARTZ)
    rep = load_items(str(path), SCHWARTZ, on_invalid="skip").report
    assert rep.n_rows == 60 and rep.n_items == 58 and rep.n_dropped == 2  # the row and its partner
    assert rep.dropped[0].line == 4


def test_csv_quoted_line_breaks_still_load(tmp_path):
    """The unclosed-quote guard does not reject real multi-line fields, even in the first column."""
    rows = [{"scenario": r.pop("scenario") + "\nSecond line, with a comma.", **r}
            for r in base_rows(False)]  # fmt: skip
    items = load_items(str(write(tmp_path / "a.csv", rows)), SCHWARTZ)
    assert len(items) == 60 and items.items[0].scenario.endswith("\nSecond line, with a comma.")
    assert items.items[1].id == rows[1]["id"]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (
            b"id,scene_id,id,action",
            r"a\.csv:1: the header row names columns \['id'\] more than once",
        ),
        (b'id,"scene_id,action', r"a\.csv:1: malformed CSV header row"),
        (b"id,sce\xffne_id", r"a\.csv:1: cannot read the header row: not valid UTF-8"),
    ],
)
def test_csv_broken_header(tmp_path, line, needle):
    path = write(tmp_path / "a.csv", base_rows(False))
    path.write_bytes(line + b"\n" + path.read_bytes().split(b"\n", 1)[1])
    for policy in ("error", "skip"):
        with pytest.raises(DataError, match=needle):
            load_items(str(path), SCHWARTZ, on_invalid=policy)


def test_csv_stray_carriage_return_and_huge_field(tmp_path):
    rows = base_rows(False)
    path = write(tmp_path / "a.csv", rows)
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b",", b",x\ry", 1)
    lines[5] = lines[5].replace(b",", b',"' + b"z" * 140_000, 1)  # over csv's field size limit
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"a\.csv:3: malformed CSV \(new-line character"):
        load_items(str(path), SCHWARTZ)
    rep = load_items(str(path), SCHWARTZ, on_invalid="skip").report
    assert {2, 5} <= {d.line - 1 for d in rep.dropped}  # header is line 1
    assert rep.n_rows == 60 and rep.n_items + rep.n_dropped == 60


def test_split_column_errors_name_the_file(tmp_path):
    rows = base_rows(True)
    del rows[7]["split"]
    path = write(tmp_path / "a.jsonl", rows)
    with pytest.raises(
        DataError,
        match=rf"^{re.escape(str(path))}: field 'split': 1 of 60 items have no split \(e\.g\. ids \['scene_000/",
    ):
        load_items(str(path), SCHWARTZ)
    rows = [r for r in base_rows(False) if r["scene_id"] == SCENES[0]]
    path = write(tmp_path / "b.jsonl", rows)
    with pytest.raises(
        DataError, match=rf"^{re.escape(str(path))}: field 'scene_id': need at least 2 scenes"
    ):
        load_items(str(path), SCHWARTZ)


# ------------------------------------------------------------------------------ held-out split
def test_heldout_missing_a_value_only_in_train_scenes(tmp_path):
    """The training run's path (`load_items` -> `check_items`): the message names file, value, fix."""
    rows = [
        r for r in base_rows(True) if not (r["scene_id"] == SCENES[0] and r["value"] == "power")
    ]
    path = write(tmp_path / "a.jsonl", rows)
    items = load_items(str(path), SCHWARTZ)
    with pytest.raises(DataError) as e:
        check_items(items, "benevolence")
    msg = str(e.value)
    assert msg.startswith(
        f"{path}: field 'value': the held-out split has no scene for values ['power']"
    )
    assert (
        "['power'] are only in train scenes: raise data.test_fraction, try another data.seed" in msg
    )
    assert "1 of 3 scenes are held out" in msg


def test_heldout_missing_a_value_absent_from_the_data(tmp_path):
    rows = [r for r in base_rows(False) if r["value"] not in ("power", "hedonism")]
    items = load_items(str(write(tmp_path / "a.jsonl", rows)), SCHWARTZ, test_fraction=0.3, seed=0)
    with pytest.raises(DataError) as e:
        items.heldout()
    msg = str(e.value)
    assert msg.startswith(
        f"{tmp_path / 'a.jsonl'}: field 'value': the held-out split has no scene for values ['hedonism', 'power']"
    )
    assert "['hedonism', 'power'] have no item in the data at all: add scenes with them" in msg


def test_heldout_empty_when_the_split_column_has_no_test_scene(tmp_path):
    rows = base_rows(True)
    for r in rows:
        r["split"] = "train"
    path = write(tmp_path / "a.csv", rows)
    with pytest.raises(
        DataError,
        match=rf"^{re.escape(str(path))}: field 'split': the held-out \(test\) split is empty",
    ):
        check_items(load_items(str(path), SCHWARTZ), "benevolence")


def test_preflight_target_without_train_pairs(tmp_path):
    """All of a value's pairs held out: preflight stops before training (a plain ValueError)."""
    rows = [
        r for r in base_rows(True) if not (r["scene_id"] != SCENES[0] and r["value"] == "power")
    ]
    items = load_items(str(write(tmp_path / "a.jsonl", rows)), SCHWARTZ)
    assert check_items(items, "benevolence")["n_heldout_scenes"] == 1
    with pytest.raises(
        ValueError, match="value=power: the train split has no express/suppress pair"
    ):
        check_items(items, "power")


def test_bundled_still_loads_clean():
    items = load_items(BUNDLED, SCHWARTZ)
    assert items.report.n_dropped == 0 and len(items) == items.report.n_rows == 960
