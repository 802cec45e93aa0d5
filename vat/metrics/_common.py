"""Shared helpers of `vat.metrics`: input checks, NaN-aware means, rank correlations, quantiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from vat.settings import COUNT, Choice, Rule, number

#: Smallest |G| (score units) for which the functions on D report gain-normalised quantities.
#: `compute_vat` takes eps in units of the pre state's scene SD instead (`eps_threshold`).
DEFAULT_EPS = 1e-3
#: Fewest scenes two columns must share for their correlation to enter R (else NaN).
DEFAULT_MIN_OVERLAP = 8


class EpsUnits(Choice):
    """What eps is measured in: a share of the pre state's scene SD, or probe score units."""

    pre_sd = "pre_sd"
    score = "score"


class CouplingMethod(Choice):
    """The rank correlation of the coupling matrix R."""

    spearman = "spearman"
    kendall = "kendall"


class BootstrapScheme(Choice):
    """Resampling for the GND/nVAT intervals: with replacement, or the paper's rescaled subsamples."""

    bootstrap = "bootstrap"
    subsample = "subsample"


# The ranges of the metric settings, each written once: `vat.metrics.settings.MetricsSettings`
# checks a configuration with them, and the functions that take one directly check it with them.
EPS = Rule(number(0), "a number >= 0")
MIN_OVERLAP = Rule(number(2, integer=True), "an integer >= 2 (shared scenes)")
CI = Rule(number(0, 1, lo_open=True, hi_open=True), "a level in (0, 1), e.g. 0.95")
SUBSAMPLE_FRAC = Rule(number(0, 1, lo_open=True), "a fraction in (0, 1]")
RESAMPLES = COUNT  # n_bootstrap, n_permutations
HUB_K = Rule(number(0, integer=True), "an integer >= 0 (hubs reported)")

_NAN = float("nan")
# Elements per vectorised chunk (resamples x scenes x values): bounds memory at micro level.
_CHUNK_ELEMENTS = 2_000_000


# --------------------------------------------------------------------------------------------------
# small helpers


def _as_matrix(a: Any, name: str) -> np.ndarray:
    m = np.asarray(a, dtype=float)
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_scenes, n_values), got shape {m.shape}")
    return m


def _as_square(R: Any) -> np.ndarray:
    m = np.asarray(R, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"R must be a square matrix, got shape {m.shape}")
    return m


def _check_index(t_idx: int, n_values: int) -> int:
    if isinstance(t_idx, bool) or not isinstance(t_idx, int | np.integer):
        raise TypeError(f"t_idx must be an integer column index, got {t_idx!r}")
    t = int(t_idx)
    if not 0 <= t < n_values:
        raise IndexError(f"t_idx {t} out of range for {n_values} values")
    return t


def _check_method(method: str) -> None:
    CouplingMethod.parse(method, "coupling_method")


def _check_eps(eps: float) -> float:
    EPS.check("eps", eps)
    return float(eps)


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite entries along `axis`; NaN where there are none.

    Written out instead of ``np.nanmean`` because that one emits "Mean of empty slice" warnings
    through the `warnings` module, which `np.errstate` cannot silence.
    """
    finite = np.isfinite(a)
    total = np.where(finite, a, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / finite.sum(axis=axis)


def _gain_ok(g: float, eps: float) -> bool:
    # NaN fails the comparison too: an unmeasured target counts as "gain too small".
    return bool(np.isfinite(g) and abs(g) >= eps)


def _resolve_names(values: Sequence[str] | None, n: int) -> tuple[str, ...]:
    """Column labels: the given names, checked against the matrix size. The caller names the
    columns (a `vat.taxonomy.Taxonomy`'s ``names(level)``): nothing is guessed from the size."""
    if values is None:
        raise ValueError(f"values must name the {n} columns (e.g. taxonomy.names(level))")
    names = tuple(str(v) for v in values)
    if len(names) != n:
        raise ValueError(f"{len(names)} value names for {n} columns")
    return names


def _cosine(Z: np.ndarray, *, center: bool) -> np.ndarray:
    """Column cosine similarity of ``Z`` (..., n, V) -> (..., V, V), NaN for zero-norm columns.

    With ``center=True`` this is the Pearson correlation. Kendall's tau-b is the uncentred cosine
    of the pairwise sign vectors, so both rank correlations reduce to this one routine.
    """
    if center:
        Z = Z - Z.mean(axis=-2, keepdims=True)
    # Plain einsum rather than BLAS matmul: these are many small Gram matrices, where threaded BLAS
    # can spend far longer synchronising threads than computing (seen: 100x on a 2-core box).
    C = np.einsum("...ni,...nj->...ij", Z, Z)
    ss = np.diagonal(C, axis1=-2, axis2=-1).copy()
    # Rank data are exact multiples of 1/2, so a constant column centres to exactly zero.
    has_var = ss > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        R = C / np.sqrt(ss[..., :, None] * ss[..., None, :])
    R = np.clip(R, -1.0, 1.0)  # rounding can overshoot by an ulp
    R = np.where(has_var[..., :, None] & has_var[..., None, :], R, np.nan)
    idx = np.arange(R.shape[-1])
    R[..., idx, idx] = np.where(has_var, 1.0, np.nan)
    return R


def _corr_complete(X: np.ndarray, method: str) -> np.ndarray:
    """Rank correlation of the columns of an all-finite (n, V) matrix."""
    n, V = X.shape
    if n < 2:
        return np.full((V, V), np.nan)
    if method == "spearman":
        return _cosine(stats.rankdata(X, axis=0), center=True)
    i, j = np.triu_indices(n, 1)
    return _cosine(np.sign(X[i] - X[j]), center=False)


def _spearman_1d(x: Any, y: Any) -> float:
    """Spearman correlation of two vectors over their jointly finite entries; NaN if undefined."""
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    return float(_corr_complete(np.column_stack([x[keep], y[keep]]), "spearman")[0, 1])


def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval over the resamples where the statistic is defined."""
    fin = samples[np.isfinite(samples)]
    if fin.size == 0:
        return (_NAN, _NAN)
    lo, hi = np.quantile(fin, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return (float(lo), float(hi))
