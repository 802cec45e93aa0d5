"""`Taxonomy`: a value system as an object the pipeline is given.

A taxonomy is an ordered list of values (each with a label and a motivational goal), optional
sub-items per value ("micro-values": Schwartz's 56 survey items, a foundation's facets), named
higher-order groups, and an optional **structure** that the structure statistics read:

- `Circle`: every value has a slot on a circle of ``n_slots`` (Schwartz's circumplex: 9 slots of
  40 degrees, Conformity and Tradition sharing one). Statistics: circumplex consistency with its
  Mantel test, RTHOR, and the cosine profile of the off-target shifts.
- `Clusters`: named groups of values, values outside every cluster standing apart (Moral
  Foundations: individualizing {care, fairness} vs binding {loyalty, authority, sanctity}; liberty
  apart). Statistic: within- vs between-cluster coupling.
- ``None``: no structure is claimed, and no structure statistic runs (the report omits the section).

A value without sub-items is its own single micro-value (same name), so the pipeline's unit, a
(scene, micro-value) express/suppress pair, is the same for every taxonomy.

Names are canonical snake_case: any spelling that differs only in case, spaces, hyphens or
underscores resolves to the same name (``"Self-Direction"`` -> ``self_direction``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Level = Literal["basic", "micro"]


class UnknownValueError(ValueError):
    """A value or micro-value name that is not in the taxonomy; the message lists the valid names."""


def canonical(name: str) -> str:
    """``"Self-Direction"``, ``"self direction"``, ``"SELF_DIRECTION"`` -> ``"self_direction"``."""
    return re.sub(r"[\s\-_']+", "_", str(name).strip().lower()).strip("_")


@dataclass(frozen=True)
class Value:
    """One value of a taxonomy (a Schwartz basic value, a moral foundation)."""

    name: str  # canonical snake_case
    label: str  # display form, e.g. "Self-Direction"
    goal: str  # the motivational goal or concern, one line


@dataclass(frozen=True)
class MicroValue:
    """One sub-item of a value, e.g. the survey item ``helpful`` under ``benevolence``."""

    name: str
    label: str
    gloss: str
    value: str  # the canonical value it belongs to


@dataclass(frozen=True)
class Circle:
    """Values on a circle: ``positions[v]`` is v's slot in ``0 .. n_slots - 1``."""

    n_slots: int
    positions: tuple[tuple[str, int], ...]
    kind: Literal["circle"] = "circle"

    def slot(self, value: str) -> int:
        return dict(self.positions)[value]

    def angle(self, value: str, *, radians: bool = False) -> float:
        """Slot x (360 / n_slots) degrees."""
        deg = self.slot(value) * 360.0 / self.n_slots
        return math.radians(deg) if radians else deg

    def distance(self, u: str, v: str) -> int:
        """Slots between two values the short way round: min(|k_u - k_v|, n - |k_u - k_v|)."""
        d = abs(self.slot(u) - self.slot(v))
        return min(d, self.n_slots - d)


@dataclass(frozen=True)
class Clusters:
    """Named groups of values; a value in no cluster stands apart."""

    clusters: tuple[tuple[str, tuple[str, ...]], ...]
    kind: Literal["clusters"] = "clusters"

    def cluster_of(self, value: str) -> str | None:
        return next((c for c, members in self.clusters if value in members), None)


Structure = Circle | Clusters


@dataclass(frozen=True)
class Taxonomy:
    """A value system: ordered values, their micro-values, higher-order groups, a structure.

    Build one with `vat.taxonomy.load_taxonomy` (a bundled definition or a YAML file of your own)
    or directly; `__post_init__` checks that names are canonical and unique and that groups and the
    structure only name values of the taxonomy.
    """

    name: str
    label: str
    values: tuple[Value, ...]
    micro: tuple[MicroValue, ...] = ()
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    structure: Structure | None = None
    data: str | None = None  # the bundled items file (vat/data/bundled/<data>), if any
    source: str = ""
    origin: str | None = field(default=None, compare=False)  # the YAML file of a user's own
    default_value: str | None = None  # the target when a config names none (else the first value)
    _index: dict = field(default=None, init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        where = f"taxonomy {self.name!r}"
        names = [v.name for v in self.values]
        if not names:
            raise ValueError(f"{where}: no values")
        _check_names(names, f"{where}: values")
        given = {m.value for m in self.micro}
        micro = list(self.micro) + [
            MicroValue(v.name, v.label, v.goal, v.name) for v in self.values if v.name not in given
        ]  # a value without sub-items is its own single micro-value
        unknown = sorted(given - set(names))
        if unknown:
            raise ValueError(f"{where}: micro-values under unknown values {unknown}")
        order = {n: i for i, n in enumerate(names)}
        micro.sort(key=lambda m: order[m.value])  # stable: grouped by value, in value order
        _check_names([m.name for m in micro], f"{where}: micro-values")
        for g, members in self.groups:
            _check_members(members, names, f"{where}: group {g!r}")
        if isinstance(self.structure, Circle):
            pos = dict(self.structure.positions)
            missing = [n for n in names if n not in pos]
            _check_members(list(pos), names, f"{where}: structure.positions")
            if missing:
                raise ValueError(f"{where}: structure.positions lacks {missing}")
            bad = {k: s for k, s in pos.items() if not 0 <= s < self.structure.n_slots}
            if bad:
                raise ValueError(f"{where}: slots {bad} outside 0..{self.structure.n_slots - 1}")
        elif isinstance(self.structure, Clusters):
            seen: list[str] = []
            for c, members in self.structure.clusters:
                _check_members(members, names, f"{where}: cluster {c!r}")
                seen += members
            if len(seen) != len(set(seen)):
                raise ValueError(f"{where}: a value is in two clusters: {seen}")
            if len(self.structure.clusters) < 2:
                raise ValueError(f"{where}: a cluster structure needs at least two clusters")
        if self.default_value is not None and self.default_value not in names:
            raise ValueError(f"{where}: default_value {self.default_value!r} is not one of {names}")
        index = {
            "values": tuple(names),
            "micro": tuple(m.name for m in micro),
            "value_of": {v.name: v for v in self.values},
            "micro_of": {m.name: m for m in micro},
        }
        object.__setattr__(self, "micro", tuple(micro))
        object.__setattr__(self, "_index", index)

    @property
    def default_target(self) -> str:
        """The value a config targets when it names none (``value=default``)."""
        return self.default_value or self.value_names[0]

    def ref(self) -> dict[str, str | None]:
        """How to load this taxonomy again (`load_taxonomy(**ref)`): written beside saved states."""
        return {"name": self.name, "path": self.origin}

    # ------------------------------------------------------------------ names
    @property
    def value_names(self) -> tuple[str, ...]:
        """The values' canonical names, in the taxonomy's order (the state matrix's columns)."""
        return self._index["values"]

    @property
    def micro_names(self) -> tuple[str, ...]:
        """Every micro-value, grouped by value in the taxonomy's order."""
        return self._index["micro"]

    def names(self, level: str = "basic") -> tuple[str, ...]:
        """Column names at a level: ``basic`` (or ``value``) or ``micro``."""
        if level in ("basic", "value"):
            return self.value_names
        if level == "micro":
            return self.micro_names
        raise ValueError(f"unknown level {level!r}; expected 'basic' (or 'value') or 'micro'")

    def _normalize(self, name: str, level: str) -> str:
        key = canonical(name)
        valid = self.names(level)
        if key not in valid:
            kind = "value" if level == "basic" else "micro-value"
            raise UnknownValueError(f"unknown {self.name} {kind} {name!r}; expected one of: "
                                    f"{', '.join(valid)}")  # fmt: skip
        return key

    def normalize_value(self, name: str) -> str:
        """Canonical value name for any spelling; `UnknownValueError` lists the valid ones."""
        return self._normalize(name, "basic")

    def normalize_micro_value(self, name: str) -> str:
        """Canonical micro-value name for any spelling; `UnknownValueError` lists the valid ones."""
        return self._normalize(name, "micro")

    def value_of(self, micro_value: str) -> str:
        """The value a micro-value belongs to."""
        return self._index["micro_of"][self.normalize_micro_value(micro_value)].value

    def micro_values_of(self, value: str) -> tuple[str, ...]:
        v = self.normalize_value(value)
        return tuple(m.name for m in self.micro if m.value == v)

    def level_of(self, names: Iterable[str]) -> tuple[tuple[str, ...], Level]:
        """Canonical names and their level: all values (``basic``) or all micro-values."""
        names = list(names)
        try:
            out, level = tuple(self.normalize_value(n) for n in names), "basic"
        except UnknownValueError:
            try:
                out, level = tuple(self.normalize_micro_value(n) for n in names), "micro"
            except UnknownValueError as err:
                raise UnknownValueError(
                    f"names must be all values or all micro-values of {self.name}: {err}"
                ) from None
        if len(set(out)) != len(out):
            raise ValueError(f"duplicate names in {names!r}")
        return out, level

    def label_of(self, name: str) -> str:
        """Display label of a value or micro-value (the name itself if it is neither)."""
        key = canonical(name)
        if key in self._index["value_of"]:
            return self._index["value_of"][key].label
        if key in self._index["micro_of"]:
            return self._index["micro_of"][key].label
        return str(name)

    def goal(self, value: str) -> str:
        return self._index["value_of"][self.normalize_value(value)].goal

    def micro_value(self, name: str) -> MicroValue:
        return self._index["micro_of"][self.normalize_micro_value(name)]

    def value(self, name: str) -> Value:
        return self._index["value_of"][self.normalize_value(name)]

    # ------------------------------------------------------------------ structure
    @property
    def structure_kind(self) -> str:
        """``circle``, ``clusters`` or ``none``."""
        return self.structure.kind if self.structure is not None else "none"

    def parents(self, names: Sequence[str]) -> list[str]:
        """The value of each value or micro-value name (a value is its own)."""
        names, level = self.level_of(names)
        return list(names) if level == "basic" else [self.value_of(m) for m in names]

    def angles(self, names: Sequence[str]) -> np.ndarray | None:
        """Circle angles (radians) of values or micro-values (a micro-value takes its value's);
        None when the taxonomy has no circle."""
        if not isinstance(self.structure, Circle):
            return None
        return np.array([self.structure.angle(v, radians=True) for v in self.parents(names)])

    def cluster_labels(self, names: Sequence[str]) -> list[str | None] | None:
        """Cluster of each value or micro-value (None: stands apart); None without clusters."""
        if not isinstance(self.structure, Clusters):
            return None
        return [self.structure.cluster_of(v) for v in self.parents(names)]


def _check_names(names: Sequence[str], where: str) -> None:
    bad = [n for n in names if canonical(n) != n or not n]
    if bad:
        raise ValueError(f"{where}: names must be canonical snake_case, got {bad}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"{where}: duplicate names {dup}")


def _check_members(members: Sequence[str], names: Sequence[str], where: str) -> None:
    unknown = [m for m in members if m not in names]
    if unknown:
        raise ValueError(f"{where} names unknown values {unknown}; expected some of {list(names)}")
