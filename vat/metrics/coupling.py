"""Second-order VAT: what moved together across scenes (coupling R, nVAT, hubs, circumplex)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vat.metrics._common import (
    _NAN,
    DEFAULT_MIN_OVERLAP,
    CouplingMethod,
    _as_matrix,
    _as_square,
    _check_method,
    _corr_complete,
    _cosine,
    _nanmean,
    _resolve_names,
    _spearman_1d,
)


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


def _coupling_weighted(
    D: np.ndarray, W: np.ndarray, method: str, min_overlap: int = 0
) -> np.ndarray:
    """`coupling` of every resample given as scene weights W (b, n) -> (b, V, V).

    The overlap guard counts the original scenes (a pair the data cannot support stays NaN in
    every resample, whatever the duplicates).
    """
    return _guard_overlap(_coupling_weighted_all(D, W, method), D, min_overlap)


def _coupling_weighted_all(D: np.ndarray, W: np.ndarray, method: str) -> np.ndarray:
    b = W.shape[0]
    V = D.shape[1]
    if method == "kendall":  # no shortcut: expand each resample
        reps = W.astype(np.int64)
        return np.stack([_coupling_all(np.repeat(D, reps[r], axis=0), method) for r in range(b)])
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
    """`nvat_offdiag` of each matrix of a (..., V, V) stack."""
    V = R.shape[-1]
    off = R[..., ~np.eye(V, dtype=bool)]
    return np.sqrt(_nanmean(off**2, axis=-1))


def _nvat_paper_batch(R: np.ndarray) -> np.ndarray:
    """`nvat_paper` of each matrix of a (..., V, V) stack; NaN where no entry is finite."""
    V = R.shape[-1]
    fin = np.isfinite(R)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.sqrt((np.where(fin, R, 0.0) ** 2).sum(axis=(-2, -1)) / V)
    return np.where(fin.any(axis=(-2, -1)), out, np.nan)


def _hub_batch(R: np.ndarray) -> np.ndarray:
    """Hub strengths ``sum_{u != v} |R[u, v]|`` per value, (..., V, V) -> (..., V); NaN for a
    value whose off-diagonal entries are all NaN."""
    V = R.shape[-1]
    A = np.abs(R)
    A[..., np.arange(V), np.arange(V)] = np.nan
    fin = np.isfinite(A)
    h = np.where(fin, A, 0.0).sum(axis=-2)
    return np.where(fin.any(axis=-2), h, np.nan)


# --------------------------------------------------------------------------------------------------
# second order


def overlap(D: Any) -> np.ndarray:
    """Number of scenes where both columns of ``D`` are present, (n_values, n_values) integers."""
    f = np.isfinite(_as_matrix(D, "D")).astype(np.int64)
    return f.T @ f


def _guard_overlap(R: np.ndarray, D: np.ndarray, min_overlap: int) -> np.ndarray:
    """NaN every entry of R (..., V, V) whose pair of columns shares fewer than min_overlap scenes."""
    if min_overlap < 0:
        raise ValueError(f"min_overlap must be >= 0, got {min_overlap}")
    few = overlap(D) < min_overlap
    if few.any():
        R = R.copy()
        R[..., few] = np.nan
    return R


def coupling(
    D: Any, method: CouplingMethod = "spearman", min_overlap: int = DEFAULT_MIN_OVERLAP
) -> np.ndarray:
    """Coupling matrix ``R[u, v]``: rank correlation over scenes of ``D[:, u]`` and ``D[:, v]``.

    ``method="spearman"`` (default) is the Pearson correlation of average ranks (as
    `scipy.stats.spearmanr`); ``"kendall"`` is Kendall's tau-b (as `scipy.stats.kendalltau`).
    Each pair uses the scenes where both columns are present, and is NaN when they share fewer
    than ``min_overlap`` scenes (default 8: a correlation over 2 scenes is always +-1, and at micro
    level most pairs of micro-values share only a few held-out scenes). A column without variance
    (or with fewer than ``min_overlap`` scenes of its own) has NaN in its row and column, diagonal
    included; columns with variance have 1 on the diagonal. Shape (n_values, n_values), entries in
    [-1, 1].
    """
    D = _as_matrix(D, "D")
    _check_method(method)
    return _guard_overlap(_coupling_all(D, method), D, min_overlap)


def _coupling_all(D: np.ndarray, method: str) -> np.ndarray:
    """`coupling` without the overlap guard (every pair with two or more shared scenes)."""
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
    return float(_nvat_paper_batch(R))


@dataclass(frozen=True)
class Hubs:
    """Hub strengths per value and the names of the top-k hubs (strongest first)."""

    strength: dict[str, float]
    top: tuple[str, ...]


def hubs(R: Any, values: Sequence[str] | None = None, k: int = 3) -> Hubs:
    """Coordination hubs: hub strength ``h_v = sum_{u != v} |R[u, v]|`` and the top-k values.

    NaN entries are skipped; a value whose off-diagonal entries are all NaN gets strength NaN and is
    never a hub. Ties keep the order of `values` (the column names, required). Strength is unit-free, in [0, |V| - 1].
    """
    R = _as_square(R)
    V = R.shape[0]
    names = _resolve_names(values, V)
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    h = _hub_batch(R)
    ranked = [i for i in np.argsort(-h, kind="stable") if np.isfinite(h[i])]
    return Hubs(
        strength={n: float(x) for n, x in zip(names, h, strict=True)},
        top=tuple(names[i] for i in ranked[:k]),
    )


def circumplex_consistency(R: Any, angles: Any) -> float:
    """Agreement of the coupling with a circle of values, in [-1, 1].

    Spearman correlation, over unordered pairs ``u < v`` with finite ``R[u, v]``, between
    ``R[u, v]`` and ``cos(angle_u - angle_v)``, ``angles`` in radians (a taxonomy's
    ``angles(names)``). +1 means neighbours co-move and opposites trade off exactly as a
    circumplex predicts.

    At micro level each micro-value takes the angle of its value, so two micro-values of the same
    value (or of two values sharing a slot) count as neighbours with cosine 1. NaN when fewer than
    two pairs are finite or either side has no variance.
    """
    R = _as_square(R)
    ang = np.asarray(angles, dtype=float)
    if ang.shape != (R.shape[0],):
        raise ValueError(f"{ang.size} angles for a {R.shape[0]} x {R.shape[0]} coupling matrix")
    i, j = np.triu_indices(R.shape[0], 1)
    # Round so that pairs with the same slot gap tie exactly (angle differences differ in the last
    # ulp otherwise, and Spearman would rank those spurious differences).
    expected = np.round(np.cos(ang[i] - ang[j]), 12)
    return _spearman_1d(R[i, j], expected)
