"""Raw rows from a dataset file or the Hugging Face Hub: JSON Lines, JSON, CSV, Parquet, HF.

Each reader yields ``(row number, row)`` where a row is a dict of raw cells, or a `DataError`
naming the file and line when that row cannot be read; a file that cannot be read at all raises
the `DataError`. Turning rows into validated items is `vat.data.loaders`' job.

The text readers are ours around `csv` and `json`, not `pandas` or `datasets` readers, for what the
error report needs and those do not give: every bad line named by file and line while the rest of
the file still loads (a stray quote costs one row, not the rows after it), and a JSON key given
twice an error instead of "the last one wins".
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from vat.data.schema import DataError

BUNDLED = "bundled"  # the source name of the dataset shipped in the package


def bundled_path(taxonomy) -> Path:
    """A taxonomy's bundled items file inside the installed package (`Taxonomy.data`)."""
    if not taxonomy.data:
        raise DataError("bundled", None, None, f"taxonomy {taxonomy.name!r} has no bundled items; "
                        "give data.source=<your file> (data=file)")  # fmt: skip
    return Path(str(resources.files("vat.data") / "bundled" / taxonomy.data))


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
    except Exception as e:  # datasets raises many types (ConnectionError, OfflineModeIsEnabled...)
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
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(str(path), None, None, "file not found")
    if fmt == "auto":
        fmt = path.suffix.lower().lstrip(".")
    if fmt not in _READERS:
        raise DataError(
            str(path), None, None, f"unknown format {fmt!r}; expected one of {sorted(_READERS)}"
        )
    return _READERS[fmt](path)
