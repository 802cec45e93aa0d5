"""The scenario-action item, the errors the data layer raises, and the report of dropped rows."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from enum import StrEnum

POLARITIES = ("express", "suppress")
SPLITS = ("train", "test")

#: The fields every item has once loaded (spec section 2). `split` may be unset until splitting.
ITEM_FIELDS = (
    "id", "scene_id", "country", "domain", "scenario",
    "value", "micro_value", "polarity", "action", "split",
)  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One scenario-action item: an action that expresses or suppresses a micro-value in a scene.

    A scene is one (country, domain, scenario) context. The express and suppress actions of the same
    (scene, micro_value) form a preference pair. `value` and `micro_value` are canonical snake_case
    names of the items' `vat.taxonomy.Taxonomy`.
    """

    id: str
    scene_id: str
    country: str
    domain: str
    scenario: str
    value: str
    micro_value: str
    polarity: str  # "express" | "suppress"
    action: str
    split: str | None = None  # "train" | "test" | None (not split yet)

    @property
    def sign(self) -> int:
        """+1 for express, -1 for suppress: the sign that turns a rating into a value score."""
        return 1 if self.polarity == "express" else -1

    def to_dict(self) -> dict:
        return asdict(self)


class OnInvalid(StrEnum):
    """What the loader does with an invalid row: raise at once, or drop it and report it."""

    error = "error"
    skip = "skip"


class DataError(ValueError):
    """Bad input data. The message names the source file, the line (or row) and the field."""

    def __init__(self, source: str, line: int | None, field_: str | None, reason: str):
        self.source, self.line, self.field, self.reason = source, line, field_, reason
        where = source if line is None else f"{source}:{line}"
        what = f" field {field_!r}:" if field_ else ""
        super().__init__(f"{where}:{what} {reason}")


@dataclass(frozen=True)
class DroppedRow:
    line: int
    field: str | None
    reason: str


@dataclass
class LoadReport:
    """What a load read, kept and dropped. Under ``on_invalid=skip`` every dropped row is listed here."""

    source: str
    n_rows: int = 0
    n_items: int = 0
    dropped: list[DroppedRow] = field(default_factory=list)

    def drop(self, err: DataError) -> None:
        self.dropped.append(DroppedRow(err.line or 0, err.field, err.reason))

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def reasons(self) -> Counter:
        """Dropped rows counted by field (``field: first words of reason``)."""
        return Counter(f"{d.field}: {d.reason.split(';')[0].split(':')[0]}" for d in self.dropped)

    def summary(self, max_lines: int = 10) -> str:
        head = f"{self.source}: read {self.n_rows} rows, loaded {self.n_items} items"
        if not self.dropped:
            return head + ", dropped none"
        lines = [head + f", dropped {self.n_dropped} (on_invalid=skip):"]
        lines += [f"  {n} x {why}" for why, n in self.reasons().most_common()]
        lines += [f"  line {d.line}: {d.field}: {d.reason}" for d in self.dropped[:max_lines]]
        if self.n_dropped > max_lines:
            lines.append(
                f"  ... and {self.n_dropped - max_lines} more (LoadReport.dropped has all)"
            )
        return "\n".join(lines)
