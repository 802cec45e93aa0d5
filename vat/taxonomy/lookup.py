"""Names -> labels for code that holds only names (reports reading result files).

A result file records its taxonomy by name; a report asks here for a value's display label and its
parent value. With the taxonomy at hand its own labels are used; without it every bundled
taxonomy is searched (values before micro-values), and a name no bundled taxonomy knows (a
taxonomy of your own) is shown as itself, title-cased.
"""

from __future__ import annotations

import functools

from vat.taxonomy.load import available, load_taxonomy
from vat.taxonomy.model import Taxonomy, UnknownValueError, canonical


@functools.cache
def bundled() -> tuple[Taxonomy, ...]:
    return tuple(load_taxonomy(n) for n in available())


def _search(taxonomy: Taxonomy | None) -> tuple[Taxonomy, ...]:
    return (taxonomy,) if taxonomy is not None else bundled()


def display_label(name: str, taxonomy: Taxonomy | None = None) -> str:
    """``self_direction`` -> ``Self-Direction``; an unknown name title-cased."""
    key = canonical(name)
    for t in _search(taxonomy):
        if key in t.value_names:
            return t.label_of(key)
    for t in _search(taxonomy):
        if key in t.micro_names:
            return t.label_of(key)
    return str(name).replace("_", " ").title() if key == str(name) else str(name)


def parent_value(name: str, taxonomy: Taxonomy | None = None) -> str | None:
    """The value of a value or micro-value name (a value is its own); None if no taxonomy has it."""
    key = canonical(name)
    for t in _search(taxonomy):
        if key in t.value_names:
            return key
    for t in _search(taxonomy):
        try:
            return t.value_of(key)
        except UnknownValueError:
            continue
    return None


def taxonomy_named(name: str | None) -> Taxonomy | None:
    """A bundled taxonomy by name, None for an unknown (user's own) or missing name."""
    return next((t for t in bundled() if t.name == name), None)
