"""Every flat result field, declared once.

A `VATResult` is nested (intervals in a dict, per-value dicts, matrices). Flat views of it appear in
four places: a row of the VAT curve (``vat_curve.jsonl``), a trajectory point, a row of the sweep
table (``sweep_table.csv``) and the W&B keys (``vat/<probe>/<name>``). Each is made here, from one
declaration (`FIELDS`), by `flat_row`; so a field has one name everywhere (the debiased nVAT is
``nvat_offdiag_excess`` in the curve, the sweep table and W&B alike) and adding one is one line.

`flat_row` reads a `VATResult.to_dict` (a ``vat.json`` result) or a flat row written earlier (a curve
row read back), so old files and new ones go through the same code. A field a file lacks (written
before the field existed) comes back None: never a different number under its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CURVE, TRAJECTORY, SWEEP = "curve", "trajectory", "sweep"
_ALL = frozenset({CURVE, TRAJECTORY, SWEEP})
_CS = frozenset({CURVE, SWEEP})


@dataclass(frozen=True)
class Field:
    """One flat field: its name everywhere, what it is, how to show it, where it comes from.

    ``source`` is the `VATResult` field it copies, or ``(interval key, 0 | 1)`` for an interval's
    lower or upper end. ``kind``: ``estimate``, ``lo``/``hi`` (an interval end), ``p`` (a p-value),
    ``null`` (a noise floor), ``flag``, ``count``, ``names`` (a list of values) or ``per_value``
    (a dict value -> number). ``fmt``: ``num``, ``p``, ``int``, ``flag``, ``list`` or ``dict``.
    """

    name: str
    kind: str
    fmt: str
    meaning: str
    source: str | tuple[str, int]
    places: frozenset[str] = _ALL

    def read(self, d: Mapping[str, Any]) -> Any:
        if self.name in d:  # a flat row read back (or a result field of the same name)
            return d[self.name]
        if isinstance(self.source, tuple):
            key, end = self.source
            iv = (d.get("intervals") or {}).get(key)
            return iv[end] if iv else None
        return d.get(self.source)


def _f(name, kind, fmt, meaning, source=None, places=_ALL) -> Field:
    return Field(name, kind, fmt, meaning, name if source is None else source, places)


FIELDS: tuple[Field, ...] = (
    _f("gain", "estimate", "num", "on-target gain G: mean shift of the target (score units)"),
    _f("gain_lo", "lo", "num", "lower end of G's bootstrap-t interval", ("gain", 0)),
    _f("gain_hi", "hi", "num", "upper end of G's bootstrap-t interval", ("gain", 1)),
    _f("p_gain", "p", "p", "bootstrap-t p of G = 0", places=_CS),
    _f("gain_too_small", "flag", "flag", "|G| below eps: the ratios are undefined", places=_CS),
    _f("gnd_l1", "estimate", "num", "GND, raw: mean |off-target shift| per unit |G|"),
    _f("gnd_l1_bc", "estimate", "num", "GND, bias-corrected (the headline first-order tax)"),
    _f("gnd_l1_null", "null", "num", "GND's noise floor (no off-target drift)", places=_CS),
    _f("gnd_lo", "lo", "num", "lower end of the bias-corrected GND's interval", ("gnd_l1", 0)),
    _f("gnd_hi", "hi", "num", "upper end of the bias-corrected GND's interval", ("gnd_l1", 1)),
    _f("p_drift", "p", "p", "p of no off-target value moving (smallest Holm p)", places=_CS),
    _f("p_uneven", "p", "p", "p of the off-target values moving by one common amount", places=_CS),
    _f("nvat_offdiag", "estimate", "num", "nVAT, raw: RMS off-diagonal coupling"),
    _f("nvat_offdiag_null", "null", "num", "nVAT's permutation noise floor", places=_CS),
    _f("nvat_offdiag_excess", "estimate", "num", "nVAT, debiased (the headline coupling)"),
    _f("nvat_lo", "lo", "num", "lower end of the debiased nVAT's interval", ("nvat_offdiag", 0)),
    _f("nvat_hi", "hi", "num", "upper end of the debiased nVAT's interval", ("nvat_offdiag", 1)),
    _f("p_nvat", "p", "p", "permutation p of no coupling", places=_CS),
    _f("circumplex_consistency", "estimate", "num",
       "agreement of the coupling with the taxonomy's circle (NaN without one)", places=_CS),
    _f("p_circumplex", "p", "p", "Mantel p of the circumplex consistency", places=_CS),
    _f("hubs", "names", "list", "the top-k coordination hubs", places=_CS),
    _f("n_scenes", "count", "int", "held-out scenes the comparison is paired over",
       places=frozenset({SWEEP})),
    _f("ci", "count", "num", "the intervals' confidence level", places=frozenset({SWEEP})),
    _f("shift", "per_value", "dict", "mean shift of every value", "mean_shift",
       frozenset({CURVE})),
    _f("structure", "per_value", "dict",
       "the taxonomy's structure statistics (vat.metrics.result.structure_stats)", "structure",
       frozenset({CURVE})),
)  # fmt: skip

BY_NAME = {f.name: f for f in FIELDS}


def names(place: str) -> list[str]:
    """The field names of one place (`CURVE`, `TRAJECTORY`, `SWEEP`), in declaration order."""
    return [f.name for f in FIELDS if place in f.places]


def flat_row(d: Mapping[str, Any], place: str) -> dict[str, Any]:
    """The fields of ``place`` from a `VATResult.to_dict` or a flat row (missing: None)."""
    return {f.name: f.read(d) for f in FIELDS if place in f.places}


def wandb_metrics(row: Mapping[str, Any], probe: str) -> dict[str, float]:
    """W&B keys of a curve row: ``vat/<probe>/<name>`` for its numbers and flags, and
    ``vat/<probe>/<name>/<key>`` inside the per-value dicts (the shift of every value...)."""
    out: dict[str, float] = {}
    for f in FIELDS:
        v = row.get(f.name)
        if f.kind == "per_value":
            out |= {f"vat/{probe}/{f.name}/{k}": x for k, x in (v or {}).items() if _number(x)}
        elif _number(v):
            out[f"vat/{probe}/{f.name}"] = v
    if _number(row.get("eval_seconds")):
        out[f"vat/{probe}/eval_seconds"] = row["eval_seconds"]
    return out


def _number(v: Any) -> bool:
    """A finite number or a bool (what a metrics logger takes; None and "inf" are left out)."""
    return isinstance(v, bool | int | float) and v == v and v not in (float("inf"), float("-inf"))
