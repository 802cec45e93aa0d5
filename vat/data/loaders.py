"""Read scenario-action items from JSONL, CSV, Parquet, the Hugging Face Hub or the bundled set.

Every source goes through the same path: raw rows (with their line numbers) -> a column mapping ->
per-row validation -> whole-set checks (duplicate ids, unpaired actions, one scenario per scene) ->
scene-level split. Invalid rows either raise a `DataError` naming file, line and field
(``on_invalid="error"``) or are dropped and listed in the `LoadReport` (``on_invalid="skip"``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from vat import values as V
from vat.data.items import ItemSet
from vat.data.schema import DataError, Item, LoadReport, OnInvalid
from vat.data.splits import assign_splits

#: Source column per item field. ``None`` means the field is derived (see `rows_to_items`).
DEFAULT_COLUMNS: dict[str, str | None] = {
    "id": "id",
    "scene_id": "scene_id",
    "country": "country",
    "domain": "domain",
    "scenario": "scenario",
    "value": "value",
    "micro_value": "micro_value",
    "polarity": "polarity",
    "action": "action",
    "split": "split",
}
#: Accepted raw polarity labels (compared case-insensitively) for each canonical polarity.
DEFAULT_POLARITY: dict[str, list[str]] = {
    "express": ["express", "positive", "support"],
    "suppress": ["suppress", "negative", "violate"],
}
DEFAULT_SCENARIO_TEMPLATE = "Someone in {country} faces a situation concerning {domain}."
BUNDLED = "bundled"  # the source name of the dataset shipped in the package

_REQUIRED = ("country", "domain", "micro_value", "polarity", "action")
_TEXT = ("country", "domain", "scenario", "action")
_INF = (math.inf, -math.inf)


def bundled_path() -> Path:
    """The bundled dataset file inside the installed package."""
    return Path(str(resources.files("vat.data") / "bundled" / "vat_bundled.jsonl"))


# --------------------------------------------------------------------------------------- raw rows
def _decode_lines(path: Path) -> Iterator[tuple[int, str | DataError]]:
    """Yield (line number, text) per physical line; undecodable lines yield a `DataError` instead."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(str(path), None, None, f"cannot read the file ({e.strerror})") from e
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for n, chunk in enumerate(raw.split(b"\n"), 1):
        try:
            yield n, chunk.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            yield (
                n,
                DataError(str(path), n, None, f"not valid UTF-8 ({e.reason} at byte {e.start})"),
            )


class _DuplicateKeys(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    """`json.loads` hook: a key given twice is an error, not a silent "the last one wins"."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKeys(sorted({k for k, _ in pairs if k in seen or seen.add(k)}))
    return obj


def _json_object(source: str, n: int, text: str) -> dict | DataError:
    """Parse one JSON Lines line; anything but a JSON object is a `DataError` naming the line."""
    try:
        row = json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeys as e:
        return DataError(source, n, None, f"keys {e.args[0]} appear more than once in the object")
    except json.JSONDecodeError as e:
        return DataError(source, n, None, f"invalid JSON ({e.msg} at column {e.colno})")
    except ValueError as e:  # a number too long to convert
        return DataError(source, n, None, f"invalid JSON ({e})")
    except RecursionError:
        return DataError(source, n, None, "invalid JSON (nested too deeply)")
    if not isinstance(row, dict):
        return DataError(source, n, None, f"expected a JSON object, got {type(row).__name__}")
    return row


def read_jsonl(path: Path) -> Iterator[tuple[int, dict | DataError]]:
    """One row per non-blank line; lines that do not parse yield a `DataError` naming the line."""
    for n, text in _decode_lines(path):
        if isinstance(text, DataError):
            yield n, text
        elif text.strip():
            yield n, _json_object(str(path), n, text)


Lines = list[tuple[int, str | DataError]]


def _csv_record(
    lines: Lines, i: int, strict: bool = False
) -> tuple[list[str] | None, int, str | None]:
    """Parse the CSV record starting at ``lines[i]``: (cells, physical lines used, csv error).

    A record never reaches past an undecodable line (it ends there).
    """

    def feed() -> Iterator[str]:
        for j in range(i, len(lines)):
            text = lines[j][1]
            if isinstance(text, DataError):
                return
            yield text + "\n"

    reader = csv.reader(feed(), strict=strict)
    try:
        return next(reader, []), max(reader.line_num, 1), None
    except csv.Error as e:
        return None, max(reader.line_num, 1), str(e)


def _broken_quote(lines: Lines, i: int, used: int, width: int) -> str | None:
    """Why the record on ``lines[i : i + used]`` is not a real quoted line break, or None if it is.

    It is one if it parses strictly (every closing quote followed by a comma or the line end), has
    `width` cells, and none of its later lines reads on its own as a whole row.
    """
    cells, _, error = _csv_record(lines, i, strict=True)
    if error is not None:
        return error
    if len(cells) != width:
        return f"read that way the row has {len(cells)} columns, expected {width}"
    for j in range(i + 1, i + used):
        alone, used_alone, error = _csv_record(lines, j)
        if error is None and used_alone == 1 and len(alone) == width:
            return f"line {j + 1} reads as a row of its own"
    return None


def _csv_header(path: Path, lines: Lines) -> tuple[int, list[str]]:
    """(index of the line after the header, header cells): the header is the first non-blank line."""
    src = str(path)
    for i, (n, text) in enumerate(lines):
        if isinstance(text, DataError):
            raise DataError(src, n, None, f"cannot read the header row: {text.reason}")
        cells, used, error = _csv_record(lines, i)
        if error is not None or used > 1:
            why = error or f"a quoted name is not closed before line {n + used - 1}"
            raise DataError(src, n, None, f"malformed CSV header row ({why})")
        header = [c.strip().lstrip("\ufeff").strip() for c in cells or []]
        if not any(header):
            continue  # a blank line before the header
        dups = sorted({h for h in header if h and header.count(h) > 1})
        if dups:
            raise DataError(src, n, None, f"the header row names columns {dups} more than once")
        return i + 1, header
    what = "only blank lines" if path.stat().st_size else "0 bytes"
    raise DataError(src, None, None, f"empty file ({what}): expected a header row and item rows")


def read_csv(path: Path) -> Iterator[tuple[int, dict | DataError]]:
    """Rows of a CSV file whose first non-blank line is the header; a quoted field may span lines.

    A row is numbered by its first line. A quote that is never closed (a truncated line, a stray
    ``"``) would swallow the lines after it: that row is reported at its first line and reading
    resumes on the next line, so a broken line costs one row, never the rows after it. Rows whose
    cells are all empty (as spreadsheets write them) count as blank lines.
    """
    src = str(path)
    lines = list(_decode_lines(path))
    i, header = _csv_header(path, lines)
    while i < len(lines):
        n, text = lines[i]
        if isinstance(text, DataError):
            yield n, text
            i += 1
            continue
        cells, used, error = _csv_record(lines, i)
        if error is not None:
            yield n, DataError(src, n, None, f"malformed CSV ({error})")
            i += 1
        elif used > 1 and (why := _broken_quote(lines, i, used, len(header))):
            yield n, DataError(src, n, None,
                               f"a quoted field opened on this line runs on into line "
                               f"{n + used - 1} (a missing or stray '\"'?): {why}")  # fmt: skip
            i += 1
        else:
            if used > 1 or any(c.strip() for c in cells):
                yield n, _csv_row(src, n, header, cells)
            i += used


def _csv_row(source: str, n: int, header: list[str], cells: list[str]) -> dict | DataError:
    if len(cells) != len(header):
        return DataError(source, n, None, f"expected {len(header)} columns, got {len(cells)}")
    return dict(zip(header, cells, strict=True))


def read_parquet(path: Path) -> Iterator[tuple[int, dict | DataError]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(str(path), None, None, f"not a readable Parquet file ({e})") from e
    yield from enumerate(table.to_pylist(), 1)


def read_hf(
    name: str, split: str, revision: str | None, data_files: Any = None
) -> Iterator[tuple[int, dict | DataError]]:
    """Rows of a Hugging Face dataset (Hub id, local dir, or a builder like "json" with data_files)."""
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, revision=revision, data_files=data_files)
    except (
        Exception
    ) as e:  # datasets raises many types (ConnectionError, OfflineModeIsEnabled, ...)
        raise DataError(
            name, None, None,
            f"could not load Hugging Face dataset {name!r} (split {split!r}): "
            f"{type(e).__name__}: {e}. The Hub is needed the first time: run once with network "
            "access (HF_HUB_OFFLINE unset) so that it is cached, or download the file and set "
            "data.source to its local path with data.format=json|csv|parquet.",
        ) from e  # fmt: skip
    yield from enumerate(ds, 1)


def read_json(path: Path) -> Iterator[tuple[int, dict | DataError]]:
    """A ``.json`` file: either JSON Lines, or one JSON array of objects (rows numbered from 1)."""
    head = path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head.startswith(b"["):
        yield from read_jsonl(path)
        return
    try:
        rows = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, long numbers
        raise DataError(
            str(path), getattr(e, "lineno", None), None, f"invalid JSON array ({e})"
        ) from e
    for n, row in enumerate(rows, 1):
        yield (
            n,
            row
            if isinstance(row, dict)
            else DataError(
                str(path), n, None, f"row {n}: expected a JSON object, got {type(row).__name__}"
            ),
        )


_READERS = {"jsonl": read_jsonl, "json": read_json, "csv": read_csv, "parquet": read_parquet}


def read_rows(source: str, fmt: str = "auto") -> Iterator[tuple[int, dict | DataError]]:
    path = bundled_path() if source == BUNDLED else Path(source).expanduser()
    if not path.is_file():
        raise DataError(str(path), None, None, "file not found")
    if fmt == "auto":
        fmt = path.suffix.lower().lstrip(".")
    if fmt not in _READERS:
        raise DataError(
            str(path), None, None, f"unknown format {fmt!r}; expected one of {sorted(_READERS)}"
        )
    return _READERS[fmt](path)


# ---------------------------------------------------------------------------- rows -> items
def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def _polarity_lookup(vocab: Mapping[str, list[str]]) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for canon, labels in vocab.items():
        if canon not in ("express", "suppress"):
            raise ValueError(f"polarity vocabulary keys must be express/suppress, got {canon!r}")
        for label in labels:
            lookup[str(label).strip().lower()] = canon
    return lookup


def row_to_item(
    row: Mapping[str, Any],
    line: int,
    source: str,
    columns: Mapping[str, str | None],
    polarity: Mapping[str, str],
    scenario_template: str,
) -> Item:
    """Validate one raw row and turn it into an `Item`; raises `DataError` naming line and field."""

    def err(field_: str, reason: str) -> DataError:
        return DataError(source, line, field_, reason)

    def get_missing(field_: str, col: str) -> None:
        if field_ in _REQUIRED:
            raise err(field_, f"missing (expected column {col!r})")
        return None

    def get(field_: str) -> str | None:
        col = columns.get(field_)
        if col is None:
            return None
        if col not in row or row[col] is None:
            return get_missing(field_, col)
        val = row[col]
        if isinstance(val, float) and math.isnan(val):  # pandas' and parquet's missing value
            return get_missing(field_, col)
        if isinstance(val, bool) or not isinstance(val, str | int | float) or val in _INF:
            raise err(field_, f"expected a string, got {type(val).__name__} {val!r:.40}")
        val = str(val).strip()
        try:
            val.encode("utf-8")
        except UnicodeEncodeError as e:
            raise err(field_, f"not valid Unicode text (a lone surrogate {val[e.start]!r} at "
                              f"character {e.start})") from None  # fmt: skip
        if not val and field_ in _TEXT + _REQUIRED:
            raise err(field_, "empty text")
        return val or None

    f = {k: get(k) for k in columns}
    for k in _REQUIRED:
        if f.get(k) is None:
            raise err(k, f"missing (expected column {columns.get(k)!r})")
    try:
        micro = V.normalize_micro_value(f["micro_value"])
    except V.UnknownValueError as e:
        raise err("micro_value", str(e)) from None
    value = V.MICRO[micro].value
    if f.get("value") is not None:
        try:
            given = V.normalize_value(f["value"])
        except V.UnknownValueError as e:
            raise err("value", str(e)) from None
        if given != value:
            raise err("micro_value", f"{micro!r} belongs to {value!r}, not to {given!r}")
    pol = polarity.get(f["polarity"].lower())
    if pol is None:
        raise err(
            "polarity", f"unknown polarity {f['polarity']!r}; expected one of {sorted(polarity)}"
        )
    scenario = f.get("scenario")
    if scenario is None:
        if columns.get("scenario") is not None and columns["scenario"] in row:
            raise err("scenario", "empty text")
        try:
            scenario = scenario_template.format(**{k: v for k, v in f.items() if v is not None})
        except KeyError as e:
            raise err("scenario", f"data.scenario_template needs field {e} and this row has none; "
                                  "give the row a scenario or the field") from None  # fmt: skip
    scene_id = f.get("scene_id")
    if scene_id is None:
        scene_id = f"{_slug(f['country'])}/{_slug(f['domain'])}"
        if columns.get("scenario") is not None:
            scene_id += "/" + hashlib.sha1(scenario.encode()).hexdigest()[:8]
    split = f.get("split")
    if split is not None and split.lower() not in ("train", "test"):
        raise err("split", f"unknown split {split!r}; expected 'train' or 'test'")
    return Item(
        id=f.get("id") or f"line{line}",
        scene_id=scene_id,
        country=f["country"],
        domain=f["domain"],
        scenario=scenario,
        value=value,
        micro_value=micro,
        polarity=pol,
        action=f["action"],
        split=split.lower() if split else None,
    )


def rows_to_items(
    rows: Iterator[tuple[int, dict | DataError]],
    source: str,
    *,
    columns: Mapping[str, str | None] | None = None,
    polarity: Mapping[str, list[str]] | None = None,
    scenario_template: str = DEFAULT_SCENARIO_TEMPLATE,
    on_invalid: OnInvalid | str = OnInvalid.error,
) -> tuple[list[Item], LoadReport]:
    """Validate rows into items: per row, then duplicate ids, one scenario per scene, pairing."""
    policy = OnInvalid(getattr(on_invalid, "value", on_invalid))
    columns = {**DEFAULT_COLUMNS, **(columns or {})}
    unknown = set(columns) - set(DEFAULT_COLUMNS)
    if unknown:
        raise ValueError(f"unknown item fields in column mapping: {sorted(unknown)}; "
                         f"expected some of {list(DEFAULT_COLUMNS)}")  # fmt: skip
    lookup = _polarity_lookup(polarity or DEFAULT_POLARITY)
    report = LoadReport(source)

    def fail(e: DataError) -> None:
        if policy is OnInvalid.error:
            raise e
        report.drop(e)

    kept: list[tuple[int, Item]] = []
    seen_ids: dict[str, int] = {}
    scene_text: dict[str, tuple[int, str]] = {}
    for line, row in rows:
        report.n_rows += 1
        if isinstance(row, DataError):
            fail(row)
            continue
        try:
            item = row_to_item(row, line, source, columns, lookup, scenario_template)
            if item.id in seen_ids:
                raise DataError(
                    source,
                    line,
                    "id",
                    f"duplicate id {item.id!r} (first at line {seen_ids[item.id]})",
                )
            first = scene_text.setdefault(item.scene_id, (line, item.scenario))
            if first[1] != item.scenario:
                raise DataError(
                    source,
                    line,
                    "scenario",
                    f"scene {item.scene_id!r} has a different scenario text at line {first[0]}",
                )
        except DataError as e:  # fmt: skip
            fail(e)
            continue
        seen_ids[item.id] = line
        kept.append((line, item))

    # Pairing: every (scene, micro_value) needs at least one express and one suppress action.
    groups: dict[tuple[str, str], list[tuple[int, Item]]] = defaultdict(list)
    for line, item in kept:
        groups[item.scene_id, item.micro_value].append((line, item))
    unpaired: set[int] = set()
    for (scene, micro), members in groups.items():
        pols = {it.polarity for _, it in members}
        if len(pols) < 2:
            (have,) = pols
            need = "suppress" if have == "express" else "express"
            for line, _ in members:
                unpaired.add(line)
                fail(DataError(source, line, "polarity",
                               f"unpaired action: scene {scene!r}, micro_value {micro!r} has a {have!r} "
                               f"action but no {need!r} action (every pair needs both)"))  # fmt: skip
    items = [it for line, it in kept if line not in unpaired]
    report.n_items = len(items)
    if not items:
        raise DataError(source, None, None, _no_items(report))
    return items, report


def _no_items(report: LoadReport) -> str:
    if report.n_dropped:
        return f"no valid items ({report.n_dropped} rows dropped:\n{report.summary()})"
    return ("no valid items (empty file): it has no data rows, only blank lines or a header; "
            "expected one item per line (JSONL) or per row after the header (CSV)")  # fmt: skip


# --------------------------------------------------------------------------------- entry point
def load_items(
    source: str,
    *,
    format: str = "auto",  # noqa: A002 - the config key users write
    hf_split: str = "train",
    revision: str | None = None,
    data_files: Any = None,
    columns: Mapping[str, str | None] | None = None,
    polarity: Mapping[str, list[str]] | None = None,
    scenario_template: str = DEFAULT_SCENARIO_TEMPLATE,
    on_invalid: OnInvalid | str = OnInvalid.error,
    test_fraction: float = 0.3,
    seed: int = 0,
    use_split_column: bool = True,
) -> ItemSet:
    """Load, validate and split a scenario-action dataset; the `data` config node builds this.

    `source` is ``"bundled"``, a local file (``format`` from its suffix unless given), or with
    ``format="hf"`` a Hugging Face dataset id or builder (``"json"`` plus ``data_files``).
    """
    if format == "hf":
        rows = read_hf(source, hf_split, revision, data_files)
        name = source if data_files is None else f"{source}:{data_files}"
    else:
        rows = read_rows(source, format)
        name = str(bundled_path() if source == BUNDLED else source)
    items, report = rows_to_items(
        rows, name, columns=columns, polarity=polarity,
        scenario_template=scenario_template, on_invalid=on_invalid,
    )  # fmt: skip
    items = assign_splits(
        items, test_fraction=test_fraction, seed=seed, use_column=use_split_column, source=name
    )
    return ItemSet(tuple(items), report)
