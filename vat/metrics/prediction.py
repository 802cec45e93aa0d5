"""A prediction fixed in advance, tested: does the off-target shift profile follow it?

A **prediction** for a target is a weight per other value (of the same taxonomy or of another):
an expected sign (+1 / -1 / 0) or a real weight, e.g. the cosine profile peaking at the target on
Schwartz's circle (`circle_prediction`) or the literature's values-foundations pattern
(`load_predictions("feldman2021")`, in ``vat/taxonomy/predictions/``).

**Statistic** (`prediction_test`): the agreement between the observed profile ``y`` (mean shift per
value, target excluded, NaN values dropped) and the weights ``w``:

- ``method="cosine"``: the *centred* cosine ``cos(y - mean y, w - mean w)``, i.e. Pearson's r. A
  common shift of every value carries no information about the labels and must not count as
  agreement; the uncentred cosine would score ``mean y * sum w`` as agreement whenever the weights
  do not sum to zero (every Feldman row but two). Its *permutation p* would be the same (the
  common part is constant under relabeling), but the number reported would not be, so the
  statistic is centred. It rewards the right *relative* pattern: "care and fairness move more
  than the binding foundations", not "care moved up" in absolute terms (that is the per-value
  test's job, net of the placebo).
- ``method="spearman"``: the same on ranks (robust to one large shift; rewards the right order).

**Null**: the value labels are permuted (the profile carries no information about which value is
which). All ``k!`` relabelings are enumerated when ``k! <= n_perm`` (5 values: 120, 6: 720), else
``n_perm`` random ones; ``p = #{stat_b >= obs} / k!`` exactly, ``(1 + #) / (1 + B)`` by Monte Carlo.
One-sided: agreement in the predicted direction. Tied weights collapse relabelings: weights in
groups of sizes ``m_1, m_2, ...`` have ``k! / prod m_j!`` distinct arrangements, and the smallest
attainable p is one over that (`min_attainable_p`). With 6 values and 6 distinct weights that is
1/720; with Feldman's signs over the 6 foundations (e.g. ``(0, 0, -1, -1, -1, 0)``) it is 1/20 =
0.05, so a sign prediction over the foundations can never reach p < 0.05 (its weights: 1/60).
The null assumes the values are exchangeable: values measured with very different noise should be
passed as studentised shifts (``mean / se``) instead of mean shifts.

**Placebo**: with the placebo arm's profile, the same statistic and null on ``y - y_placebo``: the
part of the pattern the target caused beyond what any training of that budget does. The verdict
is read from this net statistic when it is given (the headline tax is net of the placebo).

**Verdict** (`prediction_verdict`): ``gain not above noise: nothing can be read`` when the gain's
interval covers 0; else ``structured as predicted`` (prediction p < alpha); else ``structured, but
not as predicted`` when a prediction-free structure test passed in by the caller rejects; else
``not distinguishable from random``; ``not testable`` when the prediction's p is undefined and no
structure test rejects. A prediction-free structure test cannot come from the profile alone: every
statistic of one profile that ignores the labels (its spread, its largest entry) is unchanged by a
relabeling, so the label-permutation null says nothing about it. It must use the scenes: the
debiased nVAT's permutation p (``VATResult.p_nvat``, coupling beyond noise), the unevenness test
(``p_uneven``, the values did not all move alike), or the taxonomy's own structure statistic with
its peak left free (``cosine_p``, ``cluster_p``). The caller picks one and passes it as
``structure_p``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from scipy import stats

from vat.metrics.structure import _NAN, _TOL, RngLike
from vat.metrics.structure import _permutations as structure_permutations

__all__ = [
    "VERDICTS",
    "PredictionError",
    "PredictionTest",
    "agreement",
    "circle_prediction",
    "load_predictions",
    "min_attainable_p",
    "prediction_test",
    "prediction_verdict",
]

Method = Literal["cosine", "spearman"]

AS_PREDICTED = "structured as predicted"
OTHERWISE = "structured, but not as predicted"
RANDOM = "not distinguishable from random"
NO_GAIN = "gain not above noise: nothing can be read"
UNTESTABLE = "not testable"
#: Every verdict `prediction_verdict` can give.
VERDICTS = (AS_PREDICTED, OTHERWISE, RANDOM, NO_GAIN, UNTESTABLE)


class PredictionError(ValueError):
    """A malformed predictions file; the message names the file and the key."""


# --------------------------------------------------------------------------------------------------
# predictions as data


def predictions_dir() -> Path:
    return Path(str(resources.files("vat.taxonomy") / "predictions"))


def load_predictions(
    name: str = "feldman2021", *, form: Literal["weights", "signs"] = "weights",
    path: str | None = None,
) -> dict[str, dict[str, float]]:  # fmt: skip
    """``{target: {value: weight}}`` from a bundled predictions file (or the YAML at ``path``).

    A file has sections (``forward``, ``reverse``, ...), each with ``target_taxonomy``,
    ``measured_taxonomy`` and tables ``weights`` and/or ``signs`` (``{target: {value: number}}``);
    the sections are merged (a target may appear in one section only). Every name must be a value
    of the section's taxonomy and every sign -1, 0 or 1. Errors name the file and the key.
    """
    from vat.taxonomy import TaxonomyError, load_taxonomy

    if form not in ("weights", "signs"):
        raise ValueError(f"form must be 'weights' or 'signs', got {form!r}")
    file = Path(path).expanduser() if path else predictions_dir() / f"{name}.yaml"
    if not file.is_file():
        have = sorted(p.stem for p in predictions_dir().glob("*.yaml"))
        raise PredictionError(f"{file}: no predictions file; bundled: {have}")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise PredictionError(f"{file}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise PredictionError(f"{file}: expected a mapping at the top level")
    sections = {k: v for k, v in raw.items() if k not in ("name", "source")}
    if not sections:
        raise PredictionError(f"{file}: no section (e.g. forward:) with predictions")
    out: dict[str, dict[str, float]] = {}
    for sec, body in sections.items():
        where = f"{file}: {sec}"
        if not isinstance(body, dict) or not isinstance(body.get(form), dict):
            raise PredictionError(f"{where}: expected a mapping with a {form!r} table")
        try:
            tax_t = load_taxonomy(str(body.get("target_taxonomy")))
            tax_m = load_taxonomy(str(body.get("measured_taxonomy")))
        except TaxonomyError as e:
            raise PredictionError(f"{where}.target_taxonomy / measured_taxonomy: {e}") from None
        for target, row in body[form].items():
            key = f"{where}.{form}.{target}"
            if target not in tax_t.value_names:
                raise PredictionError(f"{key}: {target!r} is not a {tax_t.name} value; "
                                      f"expected one of {list(tax_t.value_names)}")  # fmt: skip
            if target in out:
                raise PredictionError(f"{key}: target {target!r} appears in two sections")
            if not isinstance(row, dict) or not row:
                raise PredictionError(f"{key}: expected a mapping {{value: {form[:-1]}}}")
            bad = [v for v in row if v not in tax_m.value_names]
            if bad:
                raise PredictionError(f"{key}: {bad} are not {tax_m.name} values; expected some "
                                      f"of {list(tax_m.value_names)}")  # fmt: skip
            for v, x in row.items():
                ok = isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
                if not ok or (form == "signs" and x not in (-1, 0, 1)):
                    want = "-1, 0 or 1" if form == "signs" else "a finite number"
                    raise PredictionError(f"{key}.{v}: expected {want}, got {x!r}")
            out[target] = {v: float(x) for v, x in row.items()}
    return out


def circle_prediction(taxonomy: Any, target: str, names: Sequence[str] | None = None,
                      ) -> dict[str, float]:  # fmt: skip
    """Within-taxonomy cosine prediction: ``weight_v = cos(angle_v - angle_target)`` for v != target.

    ``taxonomy`` must declare a `Circle`; ``names`` (default its values) are values or micro-values
    (a micro-value takes its value's angle). Rounded to 12 decimals so that values sharing a slot
    (or equal gaps either side) tie exactly. Raises `ValueError` without a circle.
    """
    names, _ = taxonomy.level_of(taxonomy.value_names if names is None else names)
    ang = taxonomy.angles(names)
    if ang is None:
        raise ValueError(f"taxonomy {taxonomy.name!r} declares no circle "
                         f"(structure: {taxonomy.structure_kind})")  # fmt: skip
    tname = taxonomy.level_of([target])[0][0]
    if tname not in names:
        raise ValueError(f"target {tname!r} is not among the names {list(names)}")
    t = names.index(tname)
    cos = np.round(np.cos(ang - ang[t]), 12)
    return {n: float(c) for i, (n, c) in enumerate(zip(names, cos, strict=True)) if i != t}


def min_attainable_p(weights: Any) -> float:
    """Smallest p the label-permutation test can give: ``prod_j m_j! / k!`` for weight ties of
    sizes ``m_j`` (exact enumeration; a continuous profile). 6 distinct weights: 1/720."""
    w = np.round(np.asarray(list(weights.values()) if isinstance(weights, Mapping) else weights,
                            dtype=float), 12)  # fmt: skip
    _, counts = np.unique(w[np.isfinite(w)], return_counts=True)
    return float(
        np.prod([math.factorial(int(c)) for c in counts]) / math.factorial(int(counts.sum()))
    )


# --------------------------------------------------------------------------------------------------
# the test


def _centre_unit(x: np.ndarray) -> np.ndarray:
    """Rows centred and scaled to unit norm (NaN rows where constant)."""
    z = x - x.mean(axis=-1, keepdims=True)
    nrm = np.sqrt((z * z).sum(axis=-1, keepdims=True))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            nrm > 1e-12 * (1.0 + np.abs(x).max(axis=-1, keepdims=True)), z / nrm, np.nan
        )


def agreement(Y: Any, w: Any, method: Method = "cosine", perms: np.ndarray | None = None):
    """Agreement of profiles ``Y`` (..., k) with weights ``w`` (k,): centred cosine or Spearman.

    With ``perms`` (P, k) also the statistic of every relabeling ``Y[..., perm]``, shape (..., P),
    computed as ``Y_c @ w_c[inverse perm]`` (no (..., P, k) copy). Returns ``(obs, null)``.
    """
    Y = np.asarray(Y, dtype=float)
    w = np.asarray(w, dtype=float)
    if method == "spearman":
        Y, w = stats.rankdata(Y, axis=-1), stats.rankdata(w)
    elif method != "cosine":
        raise ValueError(f"unknown method {method!r}; expected 'cosine' or 'spearman'")
    Yc, wc = _centre_unit(Y), _centre_unit(w)
    obs = np.clip(Yc @ wc, -1.0, 1.0)
    if perms is None:
        return obs, None
    inv = np.argsort(perms, axis=1)  # sum_i y[p(i)] w[i] = sum_j y[j] w[p^-1(j)]
    return obs, Yc @ wc[inv].T


def _permutations(k: int, n_perm: int, rng: RngLike) -> tuple[np.ndarray, bool]:
    """All k! relabelings when there are at most ``n_perm`` of them, else ``n_perm`` random ones
    (`vat.metrics.structure`'s enumeration), and whether they are exact."""
    exact = math.factorial(k) <= n_perm
    return structure_permutations(k, n_perm, rng, exact), exact


def _p_greater(obs: np.ndarray, null: np.ndarray, exact: bool) -> np.ndarray:
    """One-sided permutation p per row; NaN where the statistic is undefined."""
    hits = (null >= obs[..., None] - _TOL).sum(axis=-1)
    P = null.shape[-1]
    p = hits / P if exact else (1.0 + hits) / (1.0 + P)
    return np.where(np.isfinite(obs), p, np.nan)


@dataclass(frozen=True)
class PredictionTest:
    """A prediction tested against the observed profile (see `prediction_test`)."""

    method: str  # "cosine" (centred) or "spearman"
    statistic: float  # agreement of the observed profile with the prediction, in [-1, 1]
    p_value: float  # one-sided label-permutation p
    statistic_net: float  # the same on observed - placebo (NaN without a placebo)
    p_value_net: float
    n_perm: int  # relabelings the p-values are over (k! when exact)
    exact: bool
    n_values: int  # values entering the test
    values: tuple[str, ...]
    min_p: float  # smallest attainable p given the weights' ties (exact enumeration)
    sign_agreement: float  # share of values with a non-zero predicted sign whose shift has it
    basis: str  # which statistic the verdict reads: "observed" or "net of placebo"
    structure_p: float  # the caller's prediction-free structure test (NaN if none)
    gain: float
    gain_ci: tuple[float, float]
    alpha: float
    verdict: str


def prediction_verdict(p: float, structure_p: float | None = None,
                       gain_ci: tuple[float, float] | None = None, alpha: float = 0.05) -> str:  # fmt: skip
    """The verdict from the prediction's p, a prediction-free structure p and the gain's interval.

    A gain interval with a NaN end counts as covering 0 (nothing is known about the gain).
    """
    if gain_ci is not None:
        lo, hi = (float(x) for x in gain_ci)
        if not (lo > 0 or hi < 0):
            return NO_GAIN
    if np.isfinite(p) and p < alpha:
        return AS_PREDICTED
    sp = _NAN if structure_p is None else float(structure_p)
    if np.isfinite(sp) and sp < alpha:
        return OTHERWISE
    return RANDOM if np.isfinite(p) else UNTESTABLE


def _align(profile: Any, weights: Any, names: Sequence[str] | None, what: str
           ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:  # fmt: skip
    """(names, profile, weights) over the prediction's values, in the prediction's order."""
    if isinstance(weights, Mapping):
        keys = tuple(str(k) for k in weights)
        w = np.array([float(weights[k]) for k in keys])
        if isinstance(profile, Mapping):
            prof = dict(profile)
        else:
            arr = np.asarray(profile, dtype=float).ravel()
            if names is None or len(names) != arr.size:
                raise ValueError(f"{what}: an array profile with a mapping prediction needs "
                                 f"`names` for its {arr.size} entries")  # fmt: skip
            prof = dict(zip(names, arr, strict=True))
        missing = [k for k in keys if k not in prof]
        if missing:
            raise ValueError(f"{what} lacks the predicted values {missing}; it has {list(prof)}")
        return keys, np.array([float(prof[k]) for k in keys]), w
    w = np.asarray(weights, dtype=float).ravel()
    y = np.asarray(profile, dtype=float).ravel()
    if y.shape != w.shape:
        raise ValueError(f"{what} has {y.size} entries but the prediction {w.size}")
    keys = tuple(names) if names is not None else tuple(str(i) for i in range(w.size))
    return keys, y, w


def prediction_test(
    observed_profile: Any,
    predicted_weights: Any,
    *,
    n_perm: int = 9999,
    rng: RngLike = None,
    method: Method = "cosine",
    placebo_profile: Any = None,
    gain: float = _NAN,
    gain_ci: tuple[float, float] | None = None,
    structure_p: float | None = None,
    alpha: float = 0.05,
    names: Sequence[str] | None = None,
    target: str | None = None,
) -> PredictionTest:
    """Test a prediction fixed in advance against the observed off-target profile (module doc).

    ``observed_profile``: mean shift per value, a mapping ``{value: shift}`` or an array (then
    ``names`` names its entries when the prediction is a mapping); ``predicted_weights``: a mapping
    ``{value: weight or sign}`` (its values, in its order, are the ones tested) or an array of the
    same length. ``target`` is dropped if present; values whose observed (or placebo) shift is not
    finite are dropped. ``placebo_profile``: the placebo arm's profile, same form as the observed.
    ``structure_p``: a prediction-free structure test's p (see the module doc); ``gain_ci``: the
    on-target gain's interval. NaN statistic and p (never an exception) when fewer than 3 values
    remain, or the profile or the weights are constant. Minimum attainable p with k distinct
    weights: 1/k! (5 values: 1/120; 6: 1/720); ties raise it (`min_attainable_p`).
    """
    if isinstance(n_perm, bool) or int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    keys, y, w = _align(observed_profile, predicted_weights, names, "the observed profile")
    keep = np.isfinite(y) & np.isfinite(w) & np.array([k != target for k in keys])
    y_net = None
    if placebo_profile is not None:
        _, yp, _ = _align(placebo_profile, predicted_weights, names, "the placebo profile")
        y_net = y - yp
        keep &= np.isfinite(y_net)
    keys = tuple(k for k, m in zip(keys, keep, strict=True) if m)
    y, w = y[keep], w[keep]
    k = y.size
    stat = p = stat_net = p_net = _NAN
    n_used, exact, mp = 0, False, _NAN
    if k >= 3 and np.ptp(w) > 0:
        perms, exact = _permutations(k, int(n_perm), rng)
        n_used, mp = perms.shape[0], min_attainable_p(w)
        rows = np.stack([y] if y_net is None else [y, y_net[keep]])
        obs, null = agreement(rows, w, method, perms)
        ps = _p_greater(obs, null, exact)
        stat, p = float(obs[0]), float(ps[0])
        if y_net is not None:
            stat_net, p_net = float(obs[1]), float(ps[1])
    nz = w != 0
    sign_agree = float(np.mean(np.sign(y[nz]) == np.sign(w[nz]))) if nz.any() else _NAN
    basis = "observed" if y_net is None else "net of placebo"
    p_read = p if y_net is None else p_net
    ci = (_NAN, _NAN) if gain_ci is None else (float(gain_ci[0]), float(gain_ci[1]))
    return PredictionTest(
        method=method, statistic=stat, p_value=p, statistic_net=stat_net, p_value_net=p_net,
        n_perm=n_used, exact=exact, n_values=k, values=keys, min_p=mp,
        sign_agreement=sign_agree, basis=basis,
        structure_p=_NAN if structure_p is None else float(structure_p),
        gain=float(gain), gain_ci=ci, alpha=float(alpha),
        verdict=prediction_verdict(p_read, structure_p, gain_ci, alpha),
    )  # fmt: skip
