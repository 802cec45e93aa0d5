"""`VATResult`: every VAT quantity for one comparison, and its strict-JSON round trip."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np

from vat.metrics._common import _NAN
from vat.taxonomy import DEFAULT_TAXONOMY


def to_jsonable(x: Any) -> Any:
    """Python builtins only: NaN as None (strict JSON has neither NaN nor inf), +-inf as "inf"/"-inf".

    Infinity is meaningful here (an unbounded ratio interval), so it survives as a string that
    `VATResult.from_dict` reads back.
    """
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in x]
    return x


def _f(x: Any) -> float:
    return _NAN if x is None else float(x)  # float("inf") / float("-inf") read the strings back


def _pair(x: Any) -> tuple[float, float]:
    lo, hi = x
    return (_f(lo), _f(hi))


@dataclass(frozen=True)
class VATResult:
    """Every Value Alignment Tax quantity for one (pre, post, target) comparison.

    Dicts are keyed by value name; ``tau``, ``p_values`` and ``p_holm`` cover the non-target values
    only. ``intervals`` maps ``"gain"``, ``"gnd_l1"``, ``"nvat_offdiag"`` (the debiased nVAT's),
    ``"tau.<v>"`` (Fieller; ``(-inf, inf)`` when the gain's interval covers 0), ``"shift.<v>"``
    and ``"d_z.<v>"`` to ``(lo, hi)``. Matrices (``R``, ``R_*``) follow ``values``. Second-order
    numbers come with their permutation null: ``*_null`` (its mean), ``*_excess`` (observed in
    excess of it; for nVAT ``sqrt(max(0, nvat^2 - E_null[nvat^2]))``) and a p-value. Undefined
    numbers are NaN in Python and null in `to_dict` / `to_json`; infinite limits are "inf".
    """

    target: str
    values: tuple[str, ...]
    level: str  # "basic" or "micro"
    n_scenes: int
    eps: float  # as configured, in eps_units
    eps_units: str  # "pre_sd" or "score"
    eps_abs: float  # the |G| threshold applied, score units
    min_overlap: int
    gain: float
    gain_se: float
    gain_too_small: bool
    gain_bounded: bool  # the gain's interval excludes 0, so ratio intervals are finite
    gain_undefined_share: float  # resamples with |G*| < eps
    gain_sign_flip_share: float  # resamples whose G* has the other sign
    mean_shift: dict[str, float]
    shift_se: dict[str, float]
    d_z: dict[str, float]
    tau: dict[str, float]
    gnd_l1: float
    gnd_l1_null: float  # noise floor: mean GND when no non-target value drifts
    gnd_l1_bc: float  # bias-corrected
    gnd_l2: float
    collateral: float
    n_values_gnd: int  # non-target values that entered GND
    p_drift: float  # no non-target value moved (smallest Holm-adjusted p)
    tau_spread: float  # sd over values of tau_v
    tau_spread_null: float  # its mean if every value moved by the same amount
    p_uneven: float  # test of equal shifts of the non-target values
    coupling_method: str
    R: tuple[tuple[float, ...], ...]
    R_null_mean: tuple[tuple[float, ...], ...]
    R_p: tuple[tuple[float, ...], ...]  # p of R[u, v] = 0 (t approximation, as scipy.stats)
    R_p_holm: tuple[tuple[float, ...], ...]  # Holm over the off-diagonal pairs
    R_lo: tuple[tuple[float, ...], ...]  # Fisher-z interval
    R_hi: tuple[tuple[float, ...], ...]
    n_pairs_nvat: int  # off-diagonal pairs (u < v) that entered nVAT
    nvat_offdiag: float
    nvat_offdiag_null: float
    nvat_offdiag_excess: float  # debiased: the headline nVAT
    p_nvat: float
    nvat_paper: float
    nvat_paper_null: float
    nvat_paper_excess: float
    p_nvat_paper: float
    hubs: tuple[str, ...]
    hub_k: int
    hub_strength: dict[str, float]
    hub_null: dict[str, float]
    hub_excess: dict[str, float]
    hub_p: dict[str, float]
    hub_top_freq: dict[str, float]  # share of bootstrap resamples where the value is a top-k hub
    circumplex_consistency: float
    circumplex_null: float
    circumplex_excess: float
    p_circumplex: float  # Mantel test (value labels permuted)
    intervals: dict[str, tuple[float, float]]
    ci: float
    bootstrap_scheme: str
    n_bootstrap: int
    test_method: str
    p_values: dict[str, float]
    p_holm: dict[str, float]
    p_gain: float
    n_permutations: int
    seed: int | None
    # The value system the columns belong to, and its structure statistics (`vat.metrics.structure`
    # keys by kind; empty for a taxonomy without structure). Files written before taxonomies were
    # objects are Schwartz's, whose circle statistics are the circumplex_* fields above.
    taxonomy: str = DEFAULT_TAXONOMY
    structure_kind: str = "circle"
    structure: dict[str, float] = field(default_factory=dict)
    hub_p_holm: dict[str, float] = field(default_factory=dict)  # hub_p, Holm across the values

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (lists, dicts, floats, None for NaN) ready for strict JSON."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (``allow_nan=False``): NaN is written as ``null``."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VATResult:
        """Inverse of `to_dict` (null back to NaN, "inf" back to inf, lists back to tuples).

        Fields a file written by an older version lacks come back NaN (numbers), empty (dicts,
        matrices) or 0 (counts), so old `vat.json` files stay readable.
        """
        out: dict[str, Any] = {}
        for f in fields(cls):
            kind = str(f.type)
            if f.name not in d:
                if f.default is not MISSING:
                    out[f.name] = f.default
                    continue
                missing = {"float": _NAN, "int": 0, "bool": False, "str": ""}
                if kind in missing:
                    out[f.name] = missing[kind]
                elif kind.startswith("dict"):
                    out[f.name] = {}
                elif kind.startswith("tuple"):
                    out[f.name] = ()
                else:
                    out[f.name] = None
                continue
            x = d[f.name]
            if kind == "float":
                out[f.name] = _f(x)
            elif kind == "int":
                out[f.name] = int(x)
            elif kind == "bool":
                out[f.name] = bool(x)
            elif kind == "str":
                out[f.name] = str(x)
            elif kind == "int | None":
                out[f.name] = None if x is None else int(x)
            elif kind == "dict[str, float]":
                out[f.name] = {str(k): _f(v) for k, v in x.items()}
            elif kind.startswith("dict[str, tuple"):
                out[f.name] = {str(k): _pair(v) for k, v in x.items()}
            elif kind == "tuple[str, ...]":
                out[f.name] = tuple(str(v) for v in x)
            else:  # matrices
                out[f.name] = tuple(tuple(_f(v) for v in row) for row in x)
        return cls(**out)

    @classmethod
    def from_json(cls, s: str) -> VATResult:
        return cls.from_dict(json.loads(s))
