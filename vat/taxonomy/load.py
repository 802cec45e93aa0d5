"""Taxonomy definitions: YAML files -> `Taxonomy`.

A definition (``vat/taxonomy/definitions/<name>.yaml``, or any file given by path) is::

    name: mft                          # canonical snake_case
    label: Moral Foundations
    source: "Graham et al. 2011"       # optional: where the taxonomy comes from
    data: mft_bundled.jsonl            # optional: its bundled items in vat/data/bundled/
    default_value: care                # optional: the target when none is given (else the first)
    values:                            # in order; the state matrix's columns follow it
      - name: care
        label: Care/Harm
        goal: "..."
        micro:                         # optional sub-items
          - {name: compassion, label: Compassion, gloss: "..."}
    groups: {individualizing: [care, fairness]}        # optional higher-order groups
    structure:                         # optional; omit for no structure
      kind: clusters                   # or: circle, with n_slots and positions {value: slot}
      clusters: {individualizing: [care, fairness], binding: [loyalty, authority, sanctity]}

Errors name the file and the key and say what was expected.
"""

from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from vat.taxonomy.model import Circle, Clusters, MicroValue, Taxonomy, Value

#: The taxonomy a config, or a file written before taxonomies were objects, means by default.
DEFAULT_TAXONOMY = "schwartz"
_KEYS = {"name", "label", "source", "data", "default_value", "values", "groups", "structure"}


class TaxonomyError(ValueError):
    """A malformed taxonomy definition; the message names the file and key."""


def definitions_dir() -> Path:
    return Path(str(resources.files("vat.taxonomy") / "definitions"))


def available() -> list[str]:
    """Names of the bundled taxonomy definitions."""
    return sorted(p.stem for p in definitions_dir().glob("*.yaml"))


@functools.lru_cache(maxsize=32)
def load_taxonomy(name: str = DEFAULT_TAXONOMY, path: str | None = None) -> Taxonomy:
    """A bundled taxonomy by name, or the definition at ``path`` (a YAML file of your own).

    The `taxonomy` config node builds this (``conf/taxonomy/<name>.yaml``).
    """
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise TaxonomyError(f"taxonomy.path={path}: file not found")
    else:
        file = definitions_dir() / f"{name}.yaml"
        if not file.is_file():
            raise TaxonomyError(f"taxonomy.name={name}: no bundled definition; expected one of "
                                f"{available()} or taxonomy.path=<your file>.yaml")  # fmt: skip
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise TaxonomyError(f"{file}: not valid YAML: {e}") from None
    tax = from_dict(raw, str(file))
    if path is None and tax.name != name:
        raise TaxonomyError(f"{file}: name {tax.name!r} differs from the file name {name!r}")
    return tax if path is None else dataclasses.replace(tax, origin=str(file.resolve()))


def from_dict(d: Any, source: str = "<taxonomy>") -> Taxonomy:
    """Build a `Taxonomy` from a definition mapping; errors name ``source`` and the key."""

    def fail(key: str, reason: str) -> TaxonomyError:
        return TaxonomyError(f"{source}: {key}: {reason}")

    if not isinstance(d, dict):
        raise fail("<top>", f"expected a mapping with keys {sorted(_KEYS)}, got {type(d).__name__}")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise fail(str(unknown), f"unknown keys; expected some of {sorted(_KEYS)}")
    for key in ("name", "values"):
        if key not in d:
            raise fail(key, "missing")
    if not isinstance(d["values"], list) or not d["values"]:
        raise fail("values", "expected a non-empty list of {name, label, goal, micro}")
    values, micro = [], []
    for i, v in enumerate(d["values"]):
        if not isinstance(v, dict) or "name" not in v:
            raise fail(f"values[{i}]", "expected a mapping with at least a name")
        extra = sorted(set(v) - {"name", "label", "goal", "micro"})
        if extra:
            raise fail(f"values[{i}]", f"unknown keys {extra}; expected name, label, goal, micro")
        name = str(v["name"])
        values.append(Value(name, str(v.get("label", name)), str(v.get("goal", ""))))
        for j, m in enumerate(v.get("micro") or []):
            if not isinstance(m, dict) or "name" not in m:
                raise fail(f"values[{i}].micro[{j}]", "expected {name, label, gloss}")
            micro.append(MicroValue(str(m["name"]), str(m.get("label", m["name"])),
                                    str(m.get("gloss", "")), name))  # fmt: skip
    groups = _named_lists(d.get("groups") or {}, "groups", fail)
    try:
        return Taxonomy(
            name=str(d["name"]), label=str(d.get("label", d["name"])), values=tuple(values),
            micro=tuple(micro), groups=groups, structure=_structure(d.get("structure"), fail),
            data=d.get("data"), source=str(d.get("source", "")), default_value=d.get("default_value"),
        )  # fmt: skip
    except ValueError as e:
        if isinstance(e, TaxonomyError):
            raise
        raise TaxonomyError(f"{source}: {e}") from None


def _named_lists(m: Any, key: str, fail) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(m, dict) or not all(isinstance(x, list) for x in m.values()):
        raise fail(key, "expected a mapping of name -> list of values")
    return tuple((str(k), tuple(str(x) for x in xs)) for k, xs in m.items())


def _structure(s: Any, fail):
    if s is None:
        return None
    if not isinstance(s, dict) or s.get("kind") not in ("circle", "clusters", "none"):
        raise fail("structure.kind", "expected circle, clusters or none")
    if s["kind"] == "none":
        return None
    if s["kind"] == "circle":
        pos = s.get("positions")
        if not isinstance(pos, dict) or not isinstance(s.get("n_slots"), int):
            raise fail("structure", "a circle needs n_slots (int) and positions {value: slot}")
        return Circle(int(s["n_slots"]), tuple((str(k), int(v)) for k, v in pos.items()))
    return Clusters(_named_lists(s.get("clusters"), "structure.clusters", fail))
