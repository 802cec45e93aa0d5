"""What every probe returns, and how item scores become the scene x value state matrix S."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vat.data import Item, ItemSet
from vat.defaults import defaults_of
from vat.metrics import micro_to_basic_state
from vat.probes.scoring import Scorer
from vat.taxonomy import Taxonomy, load_taxonomy

LEVELS = ("value", "micro")
_SCORER = defaults_of(Scorer)


@dataclass
class ScoringSettings:
    """How a probe runs the `Scorer`, with the Scorer's defaults: batch size, prefix reuse, the
    padding side, an autocast dtype, a progress bar. Both probes (and their config schemas,
    conf/probe/) extend it."""

    batch_size: int = _SCORER["batch_size"]
    reuse_prefix: bool = _SCORER["reuse_prefix"]
    padding_side: str = _SCORER["padding_side"]
    autocast_dtype: str | None = _SCORER["autocast_dtype"]
    progress: bool = _SCORER["progress"]

    def config(self) -> dict:
        """What can change a score (part of the cache keys): all fields but the progress bar and
        the batch size (scores are batch-invariant)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("progress", "batch_size")}

    def scorer(self, model, tokenizer) -> Scorer:
        return Scorer(
            model, batch_size=self.batch_size, padding_side=self.padding_side,
            reuse_prefix=self.reuse_prefix, autocast_dtype=self.autocast_dtype,
            pad_token_id=tokenizer.pad_token_id or 0, progress=self.progress,
        )  # fmt: skip


@dataclass
class PromptContext:
    """A prompting intervention as the probes see it: a system prompt and few-shot examples.

    `examples` are (scenario, action, micro_value) triples, express actions of the target value from
    the train split. None / empty means the plain base model. `polarities` (the placebo's mixed
    shots) gives each example's polarity; None means all express (the judgment probe answers an
    express shot with the top rating and a suppress shot with the bottom one).
    """

    system: str | None = None
    examples: list[tuple[str, str, str]] = field(default_factory=list)
    polarities: list[str] | None = None

    def fingerprint(self) -> str:
        d = asdict(self)
        if d["polarities"] is None:  # the key of a context without it is what it always was
            del d["polarities"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def shot_polarities(self) -> list[str]:
        return (
            list(self.polarities)
            if self.polarities is not None
            else ["express"] * len(self.examples)
        )


@dataclass
class ProbeResult:
    """Item-level scores of one probe run.

    `items` has one row per item: ``id, scene_id, value, micro_value, polarity`` plus the probe's
    own columns, among them ``pref``: the quantity by which an express action should beat its
    suppress partner (mean log-prob for the likelihood probe, the Likert rating for the judgment
    probe). `units` has one scored unit per row (``scene_id, value, micro_value, score``): a pair
    margin for the likelihood probe, a signed centred rating per item for the judgment probe.
    `taxonomy` is the value system of the scored items: it names the state matrix's columns.
    """

    probe: str
    items: pd.DataFrame
    units: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    taxonomy: Taxonomy | None = None

    def state(self, level: str = "value", scenes: list[str] | None = None):
        """The state matrix S: (scenes, columns, S) with S[x, v] the mean unit score.

        Unit scores are averaged within each (scene, micro-value); micro-values are then averaged
        with equal weight into their basic value. A (scene, column) with no unit is NaN.
        """
        if self.taxonomy is None:
            raise ValueError(f"{self.probe} probe result has no taxonomy: cannot name its columns")
        return state_matrix(self.units, self.taxonomy, level=level, scenes=scenes)

    def save(self, directory: str | Path) -> Path:
        """Write ``items.parquet``, ``units.parquet`` and ``meta.json`` into `directory`."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.items.to_parquet(d / "items.parquet", index=False)
        self.units.to_parquet(d / "units.parquet", index=False)
        ref = {"taxonomy": self.taxonomy.ref()} if self.taxonomy is not None else {}
        (d / "meta.json").write_text(
            json.dumps({"probe": self.probe, **ref, **self.meta}, indent=2)
        )
        return d

    @classmethod
    def load(cls, directory: str | Path, taxonomy: Taxonomy | None = None) -> ProbeResult:
        """Read back what `save` wrote. ``taxonomy``: the one to read it with (a cache entry is
        read with the run's own: the file its saver named may be gone); by default the one saved
        beside it (states saved before taxonomies were objects: Schwartz's, the default)."""
        d = Path(directory)
        meta = json.loads((d / "meta.json").read_text())
        probe = meta.pop("probe")
        ref = meta.pop("taxonomy", {})
        taxonomy = taxonomy if taxonomy is not None else load_taxonomy(**ref)
        items, units = pd.read_parquet(d / "items.parquet"), pd.read_parquet(d / "units.parquet")
        return cls(probe, items, units, meta, taxonomy)

    def pairs(self) -> pd.DataFrame:
        """One row per (express, suppress) pair: scene, value, micro-value, both prefs, correct."""
        return pair_table(self.items)


def state_matrix(units: pd.DataFrame, taxonomy: Taxonomy, level: str = "value",
                 scenes: list[str] | None = None):  # fmt: skip
    """(scenes, column names, S): the unit scores as a scene x (micro-)value matrix of
    ``taxonomy``'s columns (values or, at ``level="micro"``, micro-values)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    micro = units.groupby(["scene_id", "micro_value"])["score"].mean().unstack("micro_value")
    scenes = sorted(micro.index) if scenes is None else list(scenes)
    names = list(taxonomy.micro_names)
    micro = micro.reindex(index=scenes, columns=names).to_numpy(dtype=float)
    if level == "micro":
        return scenes, names, micro
    return scenes, list(taxonomy.value_names), micro_to_basic_state(micro, taxonomy)


def pair_table(items: pd.DataFrame) -> pd.DataFrame:
    key = ["scene_id", "value", "micro_value"]
    e = items[items.polarity == "express"].groupby(key)["pref"].mean()
    s = items[items.polarity == "suppress"].groupby(key)["pref"].mean()
    out = pd.concat({"express": e, "suppress": s}, axis=1).dropna().reset_index()
    out["correct"] = out["express"] > out["suppress"]
    return out


def validity(result: ProbeResult, confidence: float = 0.95) -> pd.DataFrame:
    """Per value: how well the probe tells express from suppress actions on this model.

    `accuracy` is the share of (express, suppress) pairs ranked the right way, with a Wilson
    interval. `near_chance` is true when that interval contains 0.5: the probe cannot see the value
    on this model, and a VAT number for it measures noise. For the judgment probe `option_mass` is
    the mean probability the model puts on the K option tokens (low mass: the answer format is not
    followed and the rating is read from the tail of the distribution).
    """
    pairs = result.pairs()
    rows = []
    for v in result.taxonomy.value_names:
        p = pairs[pairs.value == v]
        n, k = len(p), int(p["correct"].sum())
        lo, hi = (
            stats.binomtest(k, n).proportion_ci(confidence, method="wilson")
            if n
            else (np.nan, np.nan)
        )
        row = {
            "value": v,
            "n_pairs": n,
            "accuracy": k / n if n else np.nan,
            "ci_low": lo,
            "ci_high": hi,
        }
        row["near_chance"] = bool(n == 0 or lo <= 0.5 <= hi)
        if "option_mass" in result.items:
            row["option_mass"] = float(
                result.items.loc[result.items.value == v, "option_mass"].mean()
            )
        rows.append(row)
    return pd.DataFrame(rows)


def items_frame(items: ItemSet | list[Item], **columns) -> pd.DataFrame:
    its = list(items)
    df = pd.DataFrame(
        {
            "id": [i.id for i in its],
            "scene_id": [i.scene_id for i in its],
            "value": [i.value for i in its],
            "micro_value": [i.micro_value for i in its],
            "polarity": [i.polarity for i in its],
        }
    )
    for k, v in columns.items():
        df[k] = v
    return df


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (cache keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
