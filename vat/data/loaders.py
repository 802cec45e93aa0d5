"""Load scenario-action items: raw rows (`vat.data.readers`) -> validated, split `ItemSet`.

Every source goes through the same path: raw rows (with their line numbers) -> a column mapping ->
per-row validation -> whole-set checks (duplicate ids, unpaired actions, one scenario per scene) ->
scene-level split. Invalid rows either raise a `DataError` naming file, line and field
(``on_invalid="error"``) or are dropped and listed in the `LoadReport` (``on_invalid="skip"``).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from vat.data.items import ItemSet
from vat.data.readers import BUNDLED, bundled_path, read_hf, read_rows
from vat.data.schema import DataError, Item, LoadReport, OnInvalid
from vat.data.splits import assign_splits
from vat.taxonomy import Taxonomy, UnknownValueError

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

_REQUIRED = ("country", "domain", "polarity", "action")  # and micro_value or value (below)
_TEXT = ("country", "domain", "scenario", "action")
_INF = (math.inf, -math.inf)


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
    taxonomy: Taxonomy,
) -> Item:
    """Validate one raw row and turn it into an `Item`; raises `DataError` naming line and field.

    Names are checked against ``taxonomy``. ``micro_value`` gives the value; a row of a taxonomy
    whose values have no sub-items may give ``value`` alone (the value is its own micro-value)."""

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
    given = None
    if f.get("value") is not None:
        try:
            given = taxonomy.normalize_value(f["value"])
        except UnknownValueError as e:
            raise err("value", str(e)) from None
    if f.get("micro_value") is None:
        if given is None or taxonomy.micro_values_of(given) != (given,):
            raise err("micro_value", f"missing (expected column {columns.get('micro_value')!r}"
                      + ("" if given is None else f"; {given!r} has sub-items") + ")")  # fmt: skip
        f["micro_value"] = given
    try:
        micro = taxonomy.normalize_micro_value(f["micro_value"])
    except UnknownValueError as e:
        raise err("micro_value", str(e)) from None
    value = taxonomy.value_of(micro)
    if given is not None and given != value:
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
    taxonomy: Taxonomy,
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
            item = row_to_item(row, line, source, columns, lookup, scenario_template, taxonomy)
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
    taxonomy: Taxonomy,
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

    Values and micro-values are checked against ``taxonomy``. `source` is ``"bundled"`` (the
    taxonomy's bundled items), a local file (``format`` from its suffix unless given), or with
    ``format="hf"`` a Hugging Face dataset id or builder (``"json"`` plus ``data_files``).
    """
    if format == "hf":
        rows = read_hf(source, hf_split, revision, data_files)
        name = source if data_files is None else f"{source}:{data_files}"
    else:
        path = bundled_path(taxonomy) if source == BUNDLED else source
        rows = read_rows(str(path), format)
        name = str(path)
    items, report = rows_to_items(
        rows, name, columns=columns, polarity=polarity,
        scenario_template=scenario_template, on_invalid=on_invalid, taxonomy=taxonomy,
    )  # fmt: skip
    items = assign_splits(
        items, test_fraction=test_fraction, seed=seed, use_column=use_split_column, source=name
    )
    return ItemSet(tuple(items), taxonomy, report)
