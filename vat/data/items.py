"""`ItemSet`: a validated, split scenario-action dataset and the selections training and probes use."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from vat.data.register import RegisterReport, register_report
from vat.data.schema import DataError, Item, LoadReport
from vat.taxonomy import Taxonomy


@dataclass(frozen=True)
class ItemSet:
    """Items of one value system: ``taxonomy`` names their values and micro-values."""

    items: tuple[Item, ...]
    taxonomy: Taxonomy
    report: LoadReport | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    # ------------------------------------------------------------------ selections
    def where(self, *, split: str | None = None, value: str | None = None,
              polarity: str | None = None) -> ItemSet:  # fmt: skip
        v = self.taxonomy.normalize_value(value) if value is not None else None
        keep = tuple(
            it for it in self.items
            if (split is None or it.split == split)
            and (v is None or it.value == v)
            and (polarity is None or it.polarity == polarity)
        )  # fmt: skip
        return self.subset(keep)

    def subset(self, items) -> ItemSet:
        """These items' taxonomy and load report over other items (a selection of them)."""
        return ItemSet(tuple(items), self.taxonomy, self.report)

    def train(self, value: str | None = None) -> ItemSet:
        """Train-split items, optionally of one target value (SFT targets, DPO pairs)."""
        return self.where(split="train", value=value)

    def heldout(self) -> ItemSet:
        """Held-out (test-split) items of every value: what the probes score. Never trained on.

        Raises a `DataError` naming the data file and each value without a held-out scene, and
        whether it is missing from the data or only lies in train scenes.
        """
        held = self.where(split="test")
        source = self.report.source if self.report is not None else "items"
        if not held.items:
            raise DataError(source, None, "split",
                            "the held-out (test) split is empty; raise data.test_fraction or give "
                            "some scenes split=test")  # fmt: skip
        missing = [v for v in self.taxonomy.value_names if v not in held.values()]
        if missing:
            raise DataError(source, None, "value", self._missing_values_reason(missing, held))
        return held

    def _missing_values_reason(self, missing: list[str], held: ItemSet) -> str:
        absent = [v for v in missing if v not in self.values()]
        train_only = [v for v in missing if v not in absent]
        reason = (f"the held-out split has no scene for values {missing}; the state matrix needs "
                  f"every value ({len(held.scenes())} of {len(self.scenes())} scenes are held out)")  # fmt: skip
        if absent:
            reason += f". {absent} have no item in the data at all: add scenes with them"
        if train_only:
            reason += (f". {train_only} are only in train scenes: raise data.test_fraction, try "
                       "another data.seed, or (with a split column) move a scene with them to test")  # fmt: skip
        return reason

    def pairs(self) -> list[tuple[Item, Item]]:
        """(express, suppress) preference pairs: per (scene, micro_value), zipped in data order."""
        groups: dict[tuple[str, str], dict[str, list[Item]]] = defaultdict(
            lambda: {"express": [], "suppress": []}
        )
        for it in self.items:
            groups[it.scene_id, it.micro_value][it.polarity].append(it)
        return [p for g in groups.values() for p in zip(g["express"], g["suppress"], strict=False)]

    def register(self, **kwargs) -> RegisterReport:
        """Do the express and suppress actions of the pairs differ in register (negation, length,
        sentiment markers)? `vat.data.register.register_report` over `pairs`."""
        return register_report(((e.action, s.action) for e, s in self.pairs()), **kwargs)

    # ------------------------------------------------------------------ facts
    def scenes(self) -> list[str]:
        return sorted({it.scene_id for it in self.items})

    def values(self) -> list[str]:
        present = {it.value for it in self.items}
        return [v for v in self.taxonomy.value_names if v in present]

    def micro_values(self) -> list[str]:
        present = {it.micro_value for it in self.items}
        return [m for m in self.taxonomy.micro_names if m in present]

    def describe(self) -> str:
        """One-paragraph summary: counts per split, scenes, countries, domains, values, micro-values."""
        splits = Counter(it.split for it in self.items)
        lines = [
            f"{len(self.items)} items, {len(self.scenes())} scenes "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(splits.items(), key=str))}), "
            f"{len(self.pairs())} express/suppress pairs",
            f"{len({it.country for it in self.items})} countries, "
            f"{len({it.domain for it in self.items})} domains, {len(self.values())} values, "
            f"{len(self.micro_values())} micro-values",
        ]
        if self.report is not None:
            lines.append(self.report.summary())
        if self.pairs():
            lines.append(self.register().summary())
        return "\n".join(lines)
