"""Value Alignment Tax metrics: from paired pre/post value states to gain, tax, drift and coupling.

Everything here works on *state matrices*: ``S[x, v]`` is the probe's score for value ``v`` in scene
``x`` (one row per scene, one column per value; 10 basic values or 56 micro-values). ``S_pre`` is the
model before an intervention aimed at a target value ``t``, ``S_post`` after it; rows are paired by
scene. The metrics are in the probe's own score units unless stated otherwise (ratios such as the
tax and GND are unit-free, correlations lie in [-1, 1]).

First order (what moved, on average):

- shift ``D = S_post - S_pre``; on-target gain ``G = mean_x D[x, t]``;
- per-value tax ``tau_v = mean_x D[x, v] / |G|`` and the gain-normalised drift (GND) summaries.

Second order (what moved *together*, scene by scene):

- coupling matrix ``R`` (rank correlation of the columns of ``D`` over scenes), its normalised size
  (nVAT), coordination hubs and agreement with the Schwartz circumplex.

Uncertainty: a scene bootstrap (or the 80 % subsample scheme) for intervals and a sign-flip
permutation test with Holm correction for p-values. `stability` summarises a trajectory along an
intervention's strength axis and `compute_vat` bundles everything into a serialisable `VATResult`.

Missing data policy: a non-finite cell (NaN, or +-inf) means "no item for this value in this scene";
it is skipped by every mean over scenes, and a correlation uses the scenes where both columns are
present. Undefined quantities come back as NaN (never inf, never an exception, never a
``RuntimeWarning``) so that a training-time curve keeps logging.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
from scipy import stats

from vat.values import (
    BASIC_VALUES,
    MICRO_VALUES,
    UnknownValueError,
    angle,
    basic_value_of,
    normalize_micro_value,
    normalize_value,
)

__all__ = [
    "DEFAULT_EPS",
    "GND",
    "BootstrapIntervals",
    "Hubs",
    "SignFlipResult",
    "StabilityProfile",
    "VATResult",
    "bootstrap",
    "circumplex_consistency",
    "compute_vat",
    "coupling",
    "gain",
    "gnd",
    "holm",
    "hubs",
    "mean_shift",
    "micro_to_basic_state",
    "nvat_offdiag",
    "nvat_paper",
    "shift",
    "sign_flip_test",
    "stability",
    "tax",
]

#: Smallest |G| (score units) for which gain-normalised quantities are reported.
DEFAULT_EPS = 1e-3

CouplingMethod = Literal["spearman", "kendall"]
BootstrapScheme = Literal["bootstrap", "subsample"]

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
    if method not in ("spearman", "kendall"):
        raise ValueError(f"unknown coupling method {method!r}; expected 'spearman' or 'kendall'")


def _check_eps(eps: float) -> float:
    eps = float(eps)
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return eps


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
    """Column labels: given ones, or the taxonomy's when the size says which level it is."""
    if values is None:
        if n == len(BASIC_VALUES):
            return BASIC_VALUES
        if n == len(MICRO_VALUES):
            return MICRO_VALUES
        raise ValueError(f"values must be given for a matrix with {n} values")
    names = tuple(str(v) for v in values)
    if len(names) != n:
        raise ValueError(f"{len(names)} value names for {n} columns")
    return names


def _taxonomy_names(values: Sequence[str]) -> tuple[tuple[str, ...], str]:
    """Canonical names and level ('basic' or 'micro'); all names must be from one level."""
    vals = list(values)
    try:
        names, level = tuple(normalize_value(v) for v in vals), "basic"
    except UnknownValueError:
        try:
            names, level = tuple(normalize_micro_value(v) for v in vals), "micro"
        except UnknownValueError as err:
            raise UnknownValueError(
                f"values must be all basic values or all micro-values: {err}"
            ) from None
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate values in {vals!r}")
    return names, level


def _angle_of(name: str) -> float:
    """Circumplex angle (radians) of a basic value, or of a micro-value's basic value."""
    try:
        return angle(normalize_value(name), radians=True)
    except UnknownValueError:
        return angle(basic_value_of(name), radians=True)


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


def _weights_from_indices(idx: np.ndarray, n: int) -> np.ndarray:
    """Row indices of resamples (b, m) -> multiplicity of each of the n scenes (b, n)."""
    b = idx.shape[0]
    flat = (idx + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(float)


def _spearman_weighted(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Spearman matrices of an all-finite (n, V) matrix under scene weights W (b, n) -> (b, V, V).

    Equal to `_corr_complete(np.repeat(X, w, axis=0), "spearman")` for each integer weight row w:
    the average rank of a scene among the repeated rows is (weight of strictly smaller values) +
    (weight of its tie group + 1) / 2, and the Pearson correlation of the repeated rows is the
    weight-w Pearson correlation of the originals. Sorting X once serves every resample.
    """
    n, V = X.shape
    b = W.shape[0]
    if n == 0:
        return np.full((b, V, V), np.nan)
    pos = np.arange(n)[:, None]
    cols = np.arange(V)[None, :]
    order = np.argsort(X, axis=0, kind="stable")
    xs = np.take_along_axis(X, order, axis=0)
    first = np.ones((n, V), dtype=bool)  # sorted position opens a tie group
    first[1:] = xs[1:] != xs[:-1]
    last = np.ones((n, V), dtype=bool)  # sorted position closes a tie group
    last[:-1] = first[1:]
    start = np.maximum.accumulate(np.where(first, pos, 0), axis=0)
    end = np.minimum.accumulate(np.where(last, pos, n - 1)[::-1], axis=0)[::-1]
    cum = np.cumsum(W[:, order], axis=1)  # (b, n, V): weight up to each sorted position
    upto = cum[:, end, cols]
    below = np.where(start > 0, cum[:, np.maximum(start - 1, 0), cols], 0.0)
    ranks = np.empty((b, n, V))
    ranks[:, order, cols] = below + (upto - below + 1.0) / 2.0
    total = W.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.einsum("bn,bnv->bv", W, ranks) / total[:, None]
    Z = (ranks - mu[:, None, :]) * np.sqrt(W)[:, :, None]
    R = _cosine(Z, center=False)
    R[total < 2] = np.nan  # fewer than two scenes: no correlation
    return R


def _coupling_weighted(D: np.ndarray, W: np.ndarray, method: str) -> np.ndarray:
    """`coupling` of every resample given as scene weights W (b, n) -> (b, V, V)."""
    b = W.shape[0]
    V = D.shape[1]
    if method == "kendall":  # no shortcut: expand each resample
        reps = W.astype(np.int64)
        return np.stack([coupling(np.repeat(D, reps[r], axis=0), method) for r in range(b)])
    finite = np.isfinite(D)
    if finite.all():
        return _spearman_weighted(D, W)
    # Pairwise-complete, grouped by missingness pattern as in `coupling`.
    R = np.full((b, V, V), np.nan)
    patterns, inverse = np.unique(finite.T, axis=0, return_inverse=True)
    groups = [np.flatnonzero(inverse.reshape(-1) == g) for g in range(len(patterns))]
    for a, cols_a in enumerate(groups):
        for c in range(a, len(groups)):
            rows = np.flatnonzero(patterns[a] & patterns[c])
            cols = cols_a if a == c else np.concatenate([cols_a, groups[c]])
            block = _spearman_weighted(D[np.ix_(rows, cols)], W[:, rows])
            if a == c:
                R[:, cols_a[:, None], cols_a[None, :]] = block
                continue
            off = block[:, : len(cols_a), len(cols_a) :]
            R[:, cols_a[:, None], groups[c][None, :]] = off
            R[:, groups[c][:, None], cols_a[None, :]] = np.swapaxes(off, 1, 2)
    return R


def _nvat_offdiag_batch(R: np.ndarray) -> np.ndarray:
    V = R.shape[-1]
    off = R[..., ~np.eye(V, dtype=bool)]
    return np.sqrt(_nanmean(off**2, axis=-1))


def _interval(samples: np.ndarray, ci: float) -> tuple[float, float]:
    """Percentile interval over the resamples where the statistic is defined."""
    fin = samples[np.isfinite(samples)]
    if fin.size == 0:
        return (_NAN, _NAN)
    lo, hi = np.quantile(fin, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0])
    return (float(lo), float(hi))


# --------------------------------------------------------------------------------------------------
# first order


def shift(S_pre: Any, S_post: Any) -> np.ndarray:
    """Per-scene shift ``D[x, v] = S_post[x, v] - S_pre[x, v]`` (score units).

    Both inputs are (n_scenes, n_values) with rows paired by scene; a missing cell in either makes
    the shift missing (NaN).
    """
    pre = _as_matrix(S_pre, "S_pre")
    post = _as_matrix(S_post, "S_post")
    if pre.shape != post.shape:
        raise ValueError(f"S_pre {pre.shape} and S_post {post.shape} must have the same shape")
    with np.errstate(invalid="ignore"):  # inf - inf
        D = post - pre
    return np.where(np.isfinite(D), D, np.nan)


def mean_shift(D: Any) -> np.ndarray:
    """Average movement of each value: ``m_v = mean_x D[x, v]`` over scenes with data (units: score)."""
    return _nanmean(_as_matrix(D, "D"), axis=0)


def gain(D: Any, t_idx: int) -> float:
    """On-target gain ``G = mean_x D[x, t]`` (score units). Signed: an intervention can backfire."""
    D = _as_matrix(D, "D")
    t = _check_index(t_idx, D.shape[1])
    return float(_nanmean(D[:, t], axis=0))


def tax(D: Any, t_idx: int, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Per-value tax ``tau_v = mean_x D[x, v] / |G|`` for each ``v != t`` (unit-free).

    The sign is the direction ``v`` itself moved (+: endorsed more after the intervention, i.e.
    along with the target when G > 0); the magnitude is how far it moved per unit of target gain. Entry ``t`` is NaN, and the
    whole vector is NaN when ``|G| < eps`` (the ratio would only amplify noise).
    """
    D = _as_matrix(D, "D")
    t = _check_index(t_idx, D.shape[1])
    eps = _check_eps(eps)
    m = mean_shift(D)
    out = np.full(D.shape[1], np.nan)
    if _gain_ok(m[t], eps):
        out = m / abs(m[t])
        out[t] = np.nan
    return out


@dataclass(frozen=True)
class GND:
    """Gain-normalised drift of the non-target values (see `gnd`)."""

    l1: float
    l2: float
    collateral: float
    gain: float
    gain_too_small: bool


def gnd(D: Any, t_idx: int, eps: float = DEFAULT_EPS) -> GND:
    """Gain-normalised drift: how far the other values moved per unit of target gain.

    With ``m_v = mean_x D[x, v]`` and ``G = m_t``, over the non-target values ``v != t``:

    - ``l1 = mean_v |m_v| / |G|`` (the headline first-order VAT),
    - ``l2 = sqrt(mean_v m_v^2) / |G|`` (weights large drifts more),
    - ``collateral = sum_v min(0, m_v) / |G|`` (total loss only; <= 0).

    All are unit-free. Values without any data are left out of the mean and sum. When ``|G| < eps``
    (or G is undefined) the three are NaN and ``gain_too_small`` is True.
    """
    D = _as_matrix(D, "D")
    t = _check_index(t_idx, D.shape[1])
    eps = _check_eps(eps)
    m = mean_shift(D)
    g = float(m[t])
    others = np.delete(m, t)
    others = others[np.isfinite(others)]
    if not _gain_ok(g, eps):
        return GND(_NAN, _NAN, _NAN, g, True)
    if others.size == 0:  # nothing besides the target was measured
        return GND(_NAN, _NAN, _NAN, g, False)
    scale = abs(g)
    return GND(
        l1=float(np.mean(np.abs(others)) / scale),
        l2=float(np.sqrt(np.mean(others**2)) / scale),
        collateral=float(np.sum(np.minimum(others, 0.0)) / scale),
        gain=g,
        gain_too_small=False,
    )


# --------------------------------------------------------------------------------------------------
# second order


def coupling(D: Any, method: CouplingMethod = "spearman") -> np.ndarray:
    """Coupling matrix ``R[u, v]``: rank correlation over scenes of ``D[:, u]`` and ``D[:, v]``.

    ``method="spearman"`` (default) is the Pearson correlation of average ranks (as
    `scipy.stats.spearmanr`); ``"kendall"`` is Kendall's tau-b (as `scipy.stats.kendalltau`).
    Each pair uses the scenes where both columns are present. A column without variance (or with
    fewer than two scenes) has NaN in its row and column, diagonal included; columns with variance
    have 1 on the diagonal. Shape (n_values, n_values), entries in [-1, 1].
    """
    D = _as_matrix(D, "D")
    _check_method(method)
    finite = np.isfinite(D)
    if finite.all():
        return _corr_complete(D, method)
    # Pairwise-complete correlations, grouped by missingness pattern: every pair of columns from
    # two pattern groups shares the same complete rows, so each group pair is one matrix call.
    V = D.shape[1]
    R = np.full((V, V), np.nan)
    patterns, inverse = np.unique(finite.T, axis=0, return_inverse=True)
    groups = [np.flatnonzero(inverse.reshape(-1) == g) for g in range(len(patterns))]
    for a, cols_a in enumerate(groups):
        for b in range(a, len(groups)):
            rows = np.flatnonzero(patterns[a] & patterns[b])
            if a == b:
                R[np.ix_(cols_a, cols_a)] = _corr_complete(D[np.ix_(rows, cols_a)], method)
                continue
            cols = np.concatenate([cols_a, groups[b]])
            block = _corr_complete(D[np.ix_(rows, cols)], method)[: len(cols_a), len(cols_a) :]
            R[np.ix_(cols_a, groups[b])] = block
            R[np.ix_(groups[b], cols_a)] = block.T
    return R


def nvat_offdiag(R: Any) -> float:
    """Headline nVAT: RMS off-diagonal coupling ``||R - I||_F / sqrt(|V| (|V| - 1))``.

    Computed as ``sqrt(mean of R[u, v]^2 over u != v)`` over the finite off-diagonal entries, which
    equals the Frobenius form when nothing is missing. 0 = values move independently across scenes,
    1 = every pair moves in lock-step (or exact opposition). NaN if no entry is finite.
    """
    R = _as_square(R)
    return float(_nvat_offdiag_batch(R))


def nvat_paper(R: Any) -> float:
    """The paper's normalised coupling ``||R||_F / sqrt(|V|)`` over the finite entries of R.

    Kept for comparison only: the diagonal of a correlation matrix is 1, so with all values present
    this is ``sqrt(1 + (|V| - 1) * nvat_offdiag^2) >= 1``, whereas the paper reports values of
    0.09-0.15; the project therefore leads with `nvat_offdiag`.
    """
    R = _as_square(R)
    if R.shape[0] == 0:
        return _NAN
    fin = R[np.isfinite(R)]
    if fin.size == 0:
        return _NAN
    return float(np.sqrt(np.sum(fin**2)) / math.sqrt(R.shape[0]))


@dataclass(frozen=True)
class Hubs:
    """Hub strengths per value and the names of the top-k hubs (strongest first)."""

    strength: dict[str, float]
    top: tuple[str, ...]


def hubs(R: Any, values: Sequence[str] | None = None, k: int = 3) -> Hubs:
    """Coordination hubs: hub strength ``h_v = sum_{u != v} |R[u, v]|`` and the top-k values.

    NaN entries are skipped; a value whose off-diagonal entries are all NaN gets strength NaN and is
    never a hub. Ties keep the order of `values`. ``values`` defaults to the basic (10) or micro
    (56) taxonomy when R has that size. Strength is unit-free, in [0, |V| - 1].
    """
    R = _as_square(R)
    V = R.shape[0]
    names = _resolve_names(values, V)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    A = np.abs(R)
    A[np.eye(V, dtype=bool)] = np.nan
    finite = np.isfinite(A)
    h = np.where(finite, A, 0.0).sum(axis=0)
    h[~finite.any(axis=0)] = np.nan
    ranked = [i for i in np.argsort(-h, kind="stable") if np.isfinite(h[i])]
    return Hubs(
        strength={n: float(x) for n, x in zip(names, h, strict=True)},
        top=tuple(names[i] for i in ranked[:k]),
    )


def circumplex_consistency(R: Any, values: Sequence[str] | None = None) -> float:
    """Agreement of the coupling with Schwartz's circle, in [-1, 1].

    Spearman correlation, over unordered pairs ``u < v`` with finite ``R[u, v]``, between
    ``R[u, v]`` and ``cos(angle_u - angle_v)`` (angles from `vat.values.angle`). +1 means
    neighbours co-move and opposites trade off exactly as theory predicts.

    At micro level each micro-value takes the angle of its basic value, so two micro-values of the
    same basic value (or of Conformity and Tradition, which share a slot) count as neighbours
    with cosine 1. ``values`` defaults to the taxonomy matching R's size. NaN when fewer than two
    pairs are finite or either side has no variance.
    """
    R = _as_square(R)
    names = _resolve_names(values, R.shape[0])
    ang = np.array([_angle_of(v) for v in names])
    i, j = np.triu_indices(len(names), 1)
    # Round so that pairs with the same slot gap tie exactly (angle differences differ in the last
    # ulp otherwise, and Spearman would rank those spurious differences).
    expected = np.round(np.cos(ang[i] - ang[j]), 12)
    return _spearman_1d(R[i, j], expected)


# --------------------------------------------------------------------------------------------------
# uncertainty


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals ``(lo, hi)`` from resampling scenes (see `bootstrap`)."""

    gain: tuple[float, float]
    gnd_l1: tuple[float, float]
    tau: tuple[tuple[float, float], ...]  # one per value; (nan, nan) at the target
    nvat_offdiag: tuple[float, float]
    n_resamples: int
    gain_defined: int  # resamples with |G| >= eps, i.e. where tau and GND exist
    scheme: str
    ci: float


def bootstrap(
    S_pre: Any,
    S_post: Any,
    t_idx: int,
    n_resamples: int = 1000,
    seed: int | None = 0,
    scheme: BootstrapScheme = "bootstrap",
    subsample_frac: float = 0.8,
    ci: float = 0.95,
    *,
    eps: float = DEFAULT_EPS,
    coupling_method: CouplingMethod = "spearman",
) -> BootstrapIntervals:
    """Scene-resampling percentile intervals for G, GND (l1), each tau_v and nvat_offdiag.

    Scenes (rows of ``D = S_post - S_pre``) are the unit of resampling, so the pairing of pre and
    post is kept. ``scheme="bootstrap"`` draws n_scenes rows with replacement; ``"subsample"`` is
    the paper's scheme, ``round(subsample_frac * n_scenes)`` rows without replacement. Each
    statistic is recomputed per resample and the interval is its ``(1 - ci) / 2`` and
    ``(1 + ci) / 2`` quantiles (linear interpolation), taken over the resamples where it is defined
    (tau and GND need ``|G| >= eps``; see ``gain_defined``). Deterministic for a given seed.
    ``n_resamples=0`` returns NaN intervals.

    Caveat for nVAT: it is a root-mean-square of correlations, so sampling noise only ever adds to
    it, and bootstrap duplicates make resampled correlations noisier still. When the true coupling
    is weak, the nVAT interval can sit entirely above the point estimate; read it as the spread of
    the estimate, not as a coverage guarantee. The subsample scheme is less affected.

    Cost: Spearman is vectorised over resamples (one sort of the data serves them all); Kendall,
    and Spearman with missing cells scattered over many columns, cost more per resample.
    """
    return _bootstrap_shift(
        shift(S_pre, S_post),
        t_idx,
        n_resamples=n_resamples,
        seed=seed,
        scheme=scheme,
        subsample_frac=subsample_frac,
        ci=ci,
        eps=eps,
        coupling_method=coupling_method,
    )


def _bootstrap_shift(
    D: np.ndarray,
    t_idx: int,
    *,
    n_resamples: int,
    seed: int | None,
    scheme: str,
    subsample_frac: float,
    ci: float,
    eps: float,
    coupling_method: str,
) -> BootstrapIntervals:
    """`bootstrap` on an already computed shift matrix."""
    n, V = D.shape
    t = _check_index(t_idx, V)
    eps = _check_eps(eps)
    _check_method(coupling_method)
    if scheme not in ("bootstrap", "subsample"):
        raise ValueError(f"unknown scheme {scheme!r}; expected 'bootstrap' or 'subsample'")
    if not 0 < subsample_frac <= 1:
        raise ValueError(f"subsample_frac must be in (0, 1], got {subsample_frac}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_resamples < 0:
        raise ValueError(f"n_resamples must be >= 0, got {n_resamples}")
    B = int(n_resamples) if n > 0 else 0
    nan2 = (_NAN, _NAN)
    if B == 0:
        return BootstrapIntervals(nan2, nan2, (nan2,) * V, nan2, 0, 0, scheme, ci)

    m = n if scheme == "bootstrap" else max(1, round(subsample_frac * n))
    gains = np.empty(B)
    l1s = np.empty(B)
    taus = np.empty((B, V))
    nvats = np.empty(B)
    # A resample is a weight per original scene (its multiplicity: 0, 1, 2, ... with replacement;
    # 0 or 1 for the subsample), so means and rank correlations come from the original rows without
    # materialising (resamples x scenes x values) copies or re-sorting them.
    finite = np.isfinite(D)
    D0 = np.where(finite, D, 0.0)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n * V))
    rng = np.random.default_rng(seed)
    for start in range(0, B, chunk):
        b = min(chunk, B - start)
        if scheme == "bootstrap":
            idx = rng.integers(0, n, size=(b, n))
        else:
            idx = np.argsort(rng.random((b, n)), axis=1)[:, :m]
        W = _weights_from_indices(idx, n)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (W @ D0) / (W @ finite)
        g = means[:, t]
        ok = np.isfinite(g) & (np.abs(g) >= eps)
        scale = np.where(ok, np.abs(g), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau_b = means / scale[:, None]
            l1 = _nanmean(np.abs(np.delete(means, t, axis=1)), axis=1) / scale
        tau_b[:, t] = np.nan
        sl = slice(start, start + b)
        gains[sl], l1s[sl], taus[sl] = g, l1, tau_b
        nvats[sl] = _nvat_offdiag_batch(_coupling_weighted(D, W, coupling_method))

    return BootstrapIntervals(
        gain=_interval(gains, ci),
        gnd_l1=_interval(l1s, ci),
        tau=tuple(nan2 if v == t else _interval(taus[:, v], ci) for v in range(V)),
        nvat_offdiag=_interval(nvats, ci),
        n_resamples=B,
        gain_defined=int(np.count_nonzero(np.isfinite(gains) & (np.abs(gains) >= eps))),
        scheme=scheme,
        ci=float(ci),
    )


def holm(pvals: Any) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control), NaN entries left out.

    Sort the m finite p-values ascending, ``p_(1) <= ... <= p_(m)``; the adjusted value of the i-th
    is ``max_{j <= i} min(1, (m - j + 1) p_(j))``. Returned in the input order.
    """
    p = np.asarray(pvals, dtype=float)
    out = np.full(p.shape, np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    m = idx.size
    if m == 0:
        return out
    order = idx[np.argsort(p[idx], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True)
class SignFlipResult:
    """Sign-flip permutation test per value (see `sign_flip_test`)."""

    p_values: tuple[float, ...]  # per value, NaN at the target
    p_holm: tuple[float, ...]  # Holm-adjusted across the non-target values
    p_gain: float  # the same test for G != 0
    n_permutations: int  # sign patterns evaluated (2^n_scenes when exact)
    exact: bool


def sign_flip_test(
    D: Any, t_idx: int, n_permutations: int = 10000, seed: int | None = 0
) -> SignFlipResult:
    """Two-sided sign-flip test of ``mean_x D[x, v] = 0`` for every value (so of ``tau_v = 0``).

    Under the null that a scene's shift is as likely to go either way, flipping the sign of a whole
    scene row leaves the distribution unchanged. The statistic is ``|mean_x D[x, v]|`` (scenes with
    data only; flipping never changes which). Monte Carlo, with ``n_permutations`` random flips:
    ``p = (1 + #{|stat_perm| >= |stat_obs|}) / (1 + n_permutations)``. When ``2^n_scenes <=
    n_permutations`` all sign patterns are enumerated instead (the identity among them):
    ``p = #{|stat_perm| >= |stat_obs|} / 2^n_scenes``, exact. Flipping whole rows keeps the
    dependence between values, so p-values are Holm-adjusted across the non-target values.
    ``n_permutations=0`` returns NaN.
    """
    D = _as_matrix(D, "D")
    n, V = D.shape
    t = _check_index(t_idx, V)
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    if n_permutations == 0 or n == 0:
        nan_v = (_NAN,) * V
        return SignFlipResult(nan_v, nan_v, _NAN, 0, False)

    finite = np.isfinite(D)
    D0 = np.where(finite, D, 0.0)
    # The column's count of scenes is fixed under flips, so |sum| ranks exactly like |mean|.
    observed = np.abs(D0.sum(axis=0))
    # Equal statistics (e.g. the mirror image of the observed signs) must count as ">=" despite
    # rounding: allow a tolerance relative to the largest possible |sum|.
    tol = 1e-12 * np.abs(D0).sum(axis=0)
    exact = n < 63 and 2**n <= n_permutations
    total = 2**n if exact else int(n_permutations)
    hits = np.zeros(V, dtype=np.int64)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n))
    rng = np.random.default_rng(seed)
    for start in range(0, total, chunk):
        b = min(chunk, total - start)
        if exact:
            codes = np.arange(start, start + b, dtype=np.int64)[:, None]
            signs = 1.0 - 2.0 * ((codes >> np.arange(n)) & 1)
        else:
            signs = 2.0 * rng.integers(0, 2, size=(b, n)) - 1.0
        hits += (np.abs(signs @ D0) >= observed - tol).sum(axis=0)

    p = hits / total if exact else (1.0 + hits) / (1.0 + total)
    p = np.where(finite.any(axis=0), p, np.nan)
    p_gain = float(p[t])
    p[t] = np.nan
    return SignFlipResult(
        p_values=tuple(float(x) for x in p),
        p_holm=tuple(float(x) for x in holm(p)),
        p_gain=p_gain,
        n_permutations=total,
        exact=exact,
    )


# --------------------------------------------------------------------------------------------------
# trajectories


@dataclass(frozen=True)
class StabilityProfile:
    """A trajectory along an intervention's strength axis and its summary (see `stability`)."""

    strengths: tuple[float, ...]
    gains: tuple[float, ...]
    gnds: tuple[float, ...]
    nvats: tuple[float, ...]
    monotonicity: float
    sign_flips: int
    volatility: float


def stability(
    strengths: Sequence[float],
    gains: Sequence[float],
    gnds: Sequence[float] | None = None,
    nvats: Sequence[float] | None = None,
) -> StabilityProfile:
    """Summarise how G behaves as an intervention gets stronger (checkpoints, few-shot k, ...).

    Points are sorted by strength (stable), and undefined gains are dropped from the summaries:

    - ``monotonicity`` = Spearman correlation of G against strength (+1: G only grows);
    - ``sign_flips`` = number of times G changes sign between successive points (zeros skipped);
    - ``volatility`` = population std (ddof=0) of the successive changes ``np.diff(G)``, in score
      units (NaN with fewer than two points).

    The sorted raw trajectory (G, GND, nVAT) is returned alongside; missing GND/nVAT are NaN.
    """
    s = np.asarray(strengths, dtype=float).ravel()
    k = s.size
    if not np.isfinite(s).all():
        raise ValueError("strengths must be finite")

    def _series(x: Sequence[float] | None, name: str) -> np.ndarray:
        a = np.full(k, np.nan) if x is None else np.asarray(x, dtype=float).ravel()
        if a.size != k:
            raise ValueError(f"{name} has {a.size} points, strengths has {k}")
        return a

    g, gd, nv = _series(gains, "gains"), _series(gnds, "gnds"), _series(nvats, "nvats")
    order = np.argsort(s, kind="stable")
    s, g, gd, nv = s[order], g[order], gd[order], nv[order]
    keep = np.isfinite(g)
    gk = g[keep]
    signs = np.sign(gk)
    signs = signs[signs != 0]
    steps = np.diff(gk)
    return StabilityProfile(
        strengths=tuple(float(x) for x in s),
        gains=tuple(float(x) for x in g),
        gnds=tuple(float(x) for x in gd),
        nvats=tuple(float(x) for x in nv),
        monotonicity=_spearman_1d(s[keep], gk),
        sign_flips=int(np.count_nonzero(signs[1:] != signs[:-1])),
        volatility=float(np.std(steps)) if steps.size else _NAN,
    )


# --------------------------------------------------------------------------------------------------
# aggregation


def micro_to_basic_state(S_micro: Any, micro_names: Sequence[str] = MICRO_VALUES) -> np.ndarray:
    """Aggregate a micro-level state (n_scenes, n_micro) to the 10 basic values.

    ``S[x, v] = mean over the micro-values m of v present in scene x of S_micro[x, m]``: every
    micro-value weighs the same whatever its number of items. Columns follow `BASIC_VALUES`; a basic
    value without any micro column (or none present in a scene) is NaN there.
    """
    S = _as_matrix(S_micro, "S_micro")
    names = [normalize_micro_value(m) for m in micro_names]
    if len(names) != S.shape[1]:
        raise ValueError(f"{len(names)} micro-value names for {S.shape[1]} columns")
    if len(set(names)) != len(names):
        raise ValueError("duplicate micro-value names")
    parent = np.array([basic_value_of(m) for m in names])
    out = np.full((S.shape[0], len(BASIC_VALUES)), np.nan)
    for j, v in enumerate(BASIC_VALUES):
        cols = np.flatnonzero(parent == v)
        if cols.size:
            out[:, j] = _nanmean(S[:, cols], axis=1)
    return out


# --------------------------------------------------------------------------------------------------
# everything at once


def to_jsonable(x: Any) -> Any:
    """Python builtins only, with non-finite floats as None (strict JSON has no NaN)."""
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in x]
    return x


def _f(x: Any) -> float:
    return _NAN if x is None else float(x)


def _pair(x: Any) -> tuple[float, float]:
    lo, hi = x
    return (_f(lo), _f(hi))


@dataclass(frozen=True)
class VATResult:
    """Every Value Alignment Tax quantity for one (pre, post, target) comparison.

    Dicts are keyed by value name; ``tau``, ``p_values`` and ``p_holm`` cover the non-target values
    only. ``intervals`` maps ``"gain"``, ``"gnd_l1"``, ``"nvat_offdiag"`` and ``"tau.<value>"`` to
    ``(lo, hi)``. Undefined numbers are NaN in Python and null in `to_dict` / `to_json`.
    """

    target: str
    values: tuple[str, ...]
    level: str  # "basic" or "micro"
    n_scenes: int
    eps: float
    gain: float
    gain_too_small: bool
    mean_shift: dict[str, float]
    tau: dict[str, float]
    gnd_l1: float
    gnd_l2: float
    collateral: float
    coupling_method: str
    R: tuple[tuple[float, ...], ...]
    nvat_offdiag: float
    nvat_paper: float
    hubs: tuple[str, ...]
    hub_strength: dict[str, float]
    circumplex_consistency: float
    intervals: dict[str, tuple[float, float]]
    ci: float
    bootstrap_scheme: str
    n_bootstrap: int
    p_values: dict[str, float]
    p_holm: dict[str, float]
    p_gain: float
    n_permutations: int
    permutation_exact: bool
    seed: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (lists, dicts, floats, None for NaN) ready for strict JSON."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (``allow_nan=False``): NaN is written as ``null``."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VATResult:
        """Inverse of `to_dict` (null back to NaN, lists back to tuples)."""
        fdict = lambda m: {str(k): _f(v) for k, v in m.items()}  # noqa: E731
        return cls(
            target=str(d["target"]),
            values=tuple(d["values"]),
            level=str(d["level"]),
            n_scenes=int(d["n_scenes"]),
            eps=_f(d["eps"]),
            gain=_f(d["gain"]),
            gain_too_small=bool(d["gain_too_small"]),
            mean_shift=fdict(d["mean_shift"]),
            tau=fdict(d["tau"]),
            gnd_l1=_f(d["gnd_l1"]),
            gnd_l2=_f(d["gnd_l2"]),
            collateral=_f(d["collateral"]),
            coupling_method=str(d["coupling_method"]),
            R=tuple(tuple(_f(x) for x in row) for row in d["R"]),
            nvat_offdiag=_f(d["nvat_offdiag"]),
            nvat_paper=_f(d["nvat_paper"]),
            hubs=tuple(d["hubs"]),
            hub_strength=fdict(d["hub_strength"]),
            circumplex_consistency=_f(d["circumplex_consistency"]),
            intervals={str(k): _pair(v) for k, v in d["intervals"].items()},
            ci=_f(d["ci"]),
            bootstrap_scheme=str(d["bootstrap_scheme"]),
            n_bootstrap=int(d["n_bootstrap"]),
            p_values=fdict(d["p_values"]),
            p_holm=fdict(d["p_holm"]),
            p_gain=_f(d["p_gain"]),
            n_permutations=int(d["n_permutations"]),
            permutation_exact=bool(d["permutation_exact"]),
            seed=None if d["seed"] is None else int(d["seed"]),
        )

    @classmethod
    def from_json(cls, s: str) -> VATResult:
        return cls.from_dict(json.loads(s))


def compute_vat(
    S_pre: Any,
    S_post: Any,
    target: str,
    values: Sequence[str] = BASIC_VALUES,
    *,
    eps: float = DEFAULT_EPS,
    coupling_method: CouplingMethod = "spearman",
    n_bootstrap: int = 1000,
    n_permutations: int = 10000,
    seed: int | None = 0,
    hub_k: int = 3,
    bootstrap_scheme: BootstrapScheme = "bootstrap",
    subsample_frac: float = 0.8,
    ci: float = 0.95,
) -> VATResult:
    """All VAT metrics for an intervention aimed at `target`, from paired pre/post states.

    ``values`` names the columns: all basic values (any spelling, default `BASIC_VALUES`) or all
    micro-values (micro level; then `target` is a micro-value). ``n_bootstrap=0`` /
    ``n_permutations=0`` skip the intervals / p-values (reported as NaN). See the individual
    functions for the formulas.
    """
    names, level = _taxonomy_names(values)
    D = shift(S_pre, S_post)
    if D.shape[1] != len(names):
        raise ValueError(f"states have {D.shape[1]} columns but {len(names)} values were named")
    tname = (normalize_value if level == "basic" else normalize_micro_value)(target)
    if tname not in names:
        raise ValueError(f"target {tname!r} is not among the values {list(names)}")
    t = names.index(tname)

    m = mean_shift(D)
    drift = gnd(D, t, eps)
    taus = tax(D, t, eps)
    R = coupling(D, coupling_method)
    hub = hubs(R, names, hub_k)
    # Resampling rows of D is the same as resampling the paired rows of S_pre and S_post.
    boot = _bootstrap_shift(
        D,
        t,
        n_resamples=n_bootstrap,
        seed=seed,
        scheme=bootstrap_scheme,
        subsample_frac=subsample_frac,
        ci=ci,
        eps=eps,
        coupling_method=coupling_method,
    )
    perm = sign_flip_test(D, t, n_permutations=n_permutations, seed=seed)
    others = [i for i in range(len(names)) if i != t]

    intervals = {"gain": boot.gain, "gnd_l1": boot.gnd_l1, "nvat_offdiag": boot.nvat_offdiag}
    intervals.update({f"tau.{names[i]}": boot.tau[i] for i in others})
    return VATResult(
        target=tname,
        values=names,
        level=level,
        n_scenes=int(D.shape[0]),
        eps=float(eps),
        gain=drift.gain,
        gain_too_small=drift.gain_too_small,
        mean_shift={n: float(x) for n, x in zip(names, m, strict=True)},
        tau={names[i]: float(taus[i]) for i in others},
        gnd_l1=drift.l1,
        gnd_l2=drift.l2,
        collateral=drift.collateral,
        coupling_method=coupling_method,
        R=tuple(tuple(float(x) for x in row) for row in R),
        nvat_offdiag=nvat_offdiag(R),
        nvat_paper=nvat_paper(R),
        hubs=hub.top,
        hub_strength=hub.strength,
        circumplex_consistency=circumplex_consistency(R, names),
        intervals=intervals,
        ci=float(ci),
        bootstrap_scheme=bootstrap_scheme,
        n_bootstrap=boot.n_resamples,
        p_values={names[i]: perm.p_values[i] for i in others},
        p_holm={names[i]: perm.p_holm[i] for i in others},
        p_gain=perm.p_gain,
        n_permutations=perm.n_permutations,
        permutation_exact=perm.exact,
        seed=seed,
    )
