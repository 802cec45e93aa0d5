"""Second-order inference: every coupling quantity beside its noise floor.

Sampling noise alone makes correlations non-zero, so every second-order number is biased upward:
with no coupling at all the RMS off-diagonal ``|r|`` is about ``1 / sqrt(n - 1)`` (0.28 at 14
scenes, 0.11 at 80), which is the size the paper reports. So each is reported with a null:

- **Column-permutation null** (`coupling_null`): each column of D is shuffled across scenes
  independently (its observed scenes only, so its marginal and missingness stay), which destroys
  any cross-value coupling. Per R entry the null mean; for nVAT (both forms) and hub strength the
  null mean, the observed value in excess of it, and the permutation p-value
  ``(1 + #{null >= obs}) / (1 + B)``. R entries take their p-values from the t approximation
  instead (`correlation_p_values`: Holm over all pairs needs p below ``1 / (B + 1)``). Debiased nVAT is ``sqrt(max(0, nvat^2 - E_null[nvat^2]))``:
  ``nvat^2`` is a mean of squared correlations and noise adds ``E[r^2 | rho = 0]`` to each.
- **Mantel test** for circumplex consistency (`mantel_circumplex`): value pairs are not
  independent observations, so the null permutes value labels (rows and columns of the expected
  cosine matrix together) and recomputes the Spearman correlation; two-sided p.
- **Fisher-z intervals** for R entries (`fisher_z_interval`): ``tanh(atanh(r) +- z se)`` with
  ``se^2 = 1.06 / (n - 3)`` for Spearman and ``0.437 / (n - 4)`` for Kendall (Fieller, Hartley
  and Pearson 1957).
- **nVAT interval**: the bootstrap percentile interval of ``nvat^2`` re-centred on the debiased
  estimate (bootstrap duplicates inflate correlations further, so the spread is taken from the
  bootstrap and the centre from the null), 0 at the bottom whenever the permutation test does not
  reject; square-rooted.
- **Hub ranks**: the share of bootstrap resamples in which each value is a top-k hub.

scipy's `permutation_test` computes one statistic's null per call; here one set of permutations
must serve every R entry, nVAT, and the hubs jointly (and reuse the ranks of each column), so the
permutations are drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from vat.metrics._common import _NAN, _cosine, _nanmean
from vat.metrics.coupling import (
    _coupling_all,
    _guard_overlap,
    _hub_batch,
    _nvat_offdiag_batch,
    _nvat_paper_batch,
)

__all__ = ["CouplingNull", "coupling_null", "fisher_z_interval", "mantel_circumplex"]

# Permutations per vectorised chunk (each is n_scenes x n_values floats).
_PERM_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class CouplingNull:
    """Null means and permutation p-values of the second-order quantities (see module doc)."""

    R_null_mean: np.ndarray  # (V, V)
    nvat_offdiag_null: float  # mean of the null nvat_offdiag
    nvat_offdiag_null_sq: float  # mean of its square (what `debias` subtracts)
    p_nvat_offdiag: float
    nvat_paper_null: float
    p_nvat_paper: float
    hub_null: np.ndarray  # (V,) null mean hub strength
    hub_p: np.ndarray  # (V,) one-sided p of a hub stronger than noise
    n_permutations: int


def _spearman_pairwise_batch(X: np.ndarray) -> np.ndarray:
    """Pairwise-complete Spearman of (b, n, V) data with NaN cells -> (b, V, V), no overlap guard.

    Each pair is ranked over the scenes both columns have (as `coupling` does), all pairs of all
    permutations at once: the per-permutation loop over missingness groups took minutes at micro
    level (1,540 pairs).
    """
    b, n, V = X.shape
    iu, ju = np.triu_indices(V, 1)
    out = np.full((b, V, V), np.nan)
    idx = np.arange(V)
    fin = np.isfinite(X)
    has = fin.sum(axis=1)  # (b, V)
    for start in range(0, iu.size, max(1, _PERM_CHUNK_ELEMENTS // max(1, 2 * b * n))):
        sl = slice(start, start + max(1, _PERM_CHUNK_ELEMENTS // max(1, 2 * b * n)))
        u, v = iu[sl], ju[sl]
        both = fin[:, :, u] & fin[:, :, v]  # (b, n, P)
        xu = np.where(both, X[:, :, u], np.nan)
        xv = np.where(both, X[:, :, v], np.nan)
        ru = stats.rankdata(xu, axis=1, nan_policy="omit")
        rv = stats.rankdata(xv, axis=1, nan_policy="omit")
        m = both.sum(axis=1)  # (b, P)
        with np.errstate(invalid="ignore", divide="ignore"):
            cu = np.where(both, ru - np.nansum(ru, axis=1, keepdims=True) / m[:, None, :], 0.0)
            cv = np.where(both, rv - np.nansum(rv, axis=1, keepdims=True) / m[:, None, :], 0.0)
            num = (cu * cv).sum(axis=1)
            den = np.sqrt((cu * cu).sum(axis=1) * (cv * cv).sum(axis=1))
            r = np.where((den > 0) & (m >= 2), np.clip(num / den, -1.0, 1.0), np.nan)
        out[:, u, v] = r
        out[:, v, u] = r
    # diagonal: 1 where the column varies over its own scenes (as `coupling`)
    with np.errstate(invalid="ignore"):
        varies = (
            np.nanmax(np.where(fin, X, -np.inf), axis=1)
            > np.nanmin(np.where(fin, X, np.inf), axis=1)
        ) & (has >= 2)
    out[:, idx, idx] = np.where(varies, 1.0, np.nan)
    # a column without spread has NaN in its whole row and column
    dead = ~varies
    out = np.where(dead[:, :, None] | dead[:, None, :], np.nan, out)
    return out


def _permuted_ranks(D: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Spearman fast path: ranks of each column permuted, (B, n, V), for all-finite D."""
    ranks = stats.rankdata(D, axis=0)
    return np.take_along_axis(ranks[None, :, :], perms, axis=1)


def coupling_null(
    D: np.ndarray,
    R: np.ndarray,
    *,
    method: str,
    min_overlap: int,
    n_permutations: int,
    seed: int | None,
) -> CouplingNull:
    """Permutation null of R, nVAT and hub strength for the shift matrix D (R = its coupling)."""
    n, V = D.shape
    B = int(n_permutations)
    nanV = np.full(V, np.nan)
    if B == 0 or n < 2:
        return CouplingNull(
            np.full((V, V), np.nan), _NAN, _NAN, _NAN, _NAN, _NAN,
            nanV, nanV, 0,
        )  # fmt: skip
    rng = np.random.default_rng(seed)
    finite = np.isfinite(D)
    complete = bool(finite.all())
    sum_R = np.zeros((V, V))
    cnt_R = np.zeros((V, V))
    nv_obs = float(_nvat_offdiag_batch(R))
    np_obs = float(_nvat_paper_batch(R))
    h_obs = _hub_batch(R)
    nv, nvp, hb = [], [], []
    chunk = max(1, _PERM_CHUNK_ELEMENTS // max(1, n * V))
    tol = 1e-12  # equal statistics count as ">=" despite rounding
    for start in range(0, B, chunk):
        b = min(chunk, B - start)
        if complete and method == "spearman":
            perms = np.argsort(rng.random((b, n, V)), axis=1)
            Rb = _guard_overlap(_cosine(_permuted_ranks(D, perms), center=True), D, min_overlap)
        else:
            # each column's observed values shuffled among its observed scenes
            Dp = np.full((b, n, V), np.nan)
            for v in range(V):
                rows = np.flatnonzero(finite[:, v])
                order = np.argsort(rng.random((b, rows.size)), axis=1)
                Dp[:, rows, v] = D[rows, v][order]
            if method == "spearman":
                Rb = _spearman_pairwise_batch(Dp)
            else:  # Kendall: no vectorised form here, one matrix per permutation
                Rb = np.stack([_coupling_all(Dp[k], method) for k in range(b)])
            Rb = _guard_overlap(Rb, D, min_overlap)
        fin = np.isfinite(Rb)
        sum_R += np.where(fin, Rb, 0.0).sum(axis=0)
        cnt_R += fin.sum(axis=0)
        nv.append(_nvat_offdiag_batch(Rb))
        nvp.append(_nvat_paper_batch(Rb))
        hb.append(_hub_batch(Rb))
    nv_b = np.concatenate(nv)
    nvp_b = np.concatenate(nvp)
    h_b = np.concatenate(hb)
    with np.errstate(invalid="ignore", divide="ignore"):
        R_null = sum_R / cnt_R

    def p_greater(null: np.ndarray, obs: float) -> float:
        null = null[np.isfinite(null)]
        if not np.isfinite(obs) or null.size == 0:
            return _NAN
        return float((1.0 + np.count_nonzero(null >= obs - tol)) / (1.0 + null.size))

    def mean_fin(x: np.ndarray) -> float:
        x = x[np.isfinite(x)]
        return float(np.mean(x)) if x.size else _NAN

    hub_p = np.array([p_greater(h_b[:, v], h_obs[v]) for v in range(V)])
    return CouplingNull(
        R_null_mean=R_null,
        nvat_offdiag_null=mean_fin(nv_b),
        nvat_offdiag_null_sq=mean_fin(nv_b**2),
        p_nvat_offdiag=p_greater(nv_b, nv_obs),
        nvat_paper_null=mean_fin(nvp_b),
        p_nvat_paper=p_greater(nvp_b, np_obs),
        hub_null=_nanmean(h_b, axis=0),
        hub_p=hub_p,
        n_permutations=B,
    )


def debias_nvat(nvat: float, null_sq: float) -> float:
    """``sqrt(max(0, nvat^2 - E_null[nvat^2]))``: the coupling left once noise is taken out."""
    if not (np.isfinite(nvat) and np.isfinite(null_sq)):
        return _NAN
    return float(np.sqrt(max(0.0, nvat * nvat - null_sq)))


def nvat_interval(
    nvat: float,
    null_sq: float,
    resampled: np.ndarray,
    p_value: float,
    ci: float,
) -> tuple[float, float]:
    """Interval of the debiased nVAT (see the module docstring); NaN when undefined."""
    res = np.asarray(resampled, dtype=float)
    res = res[np.isfinite(res)] ** 2
    if res.size == 0 or not (np.isfinite(nvat) and np.isfinite(null_sq)):
        return (_NAN, _NAN)
    centre = nvat * nvat - null_sq
    spread = np.quantile(res, [(1.0 - ci) / 2.0, (1.0 + ci) / 2.0]) - np.mean(res)
    lo, hi = (float(np.sqrt(max(0.0, centre + s))) for s in spread)
    if not (np.isfinite(p_value) and p_value < 1.0 - ci):
        lo = 0.0
    return (lo, hi)


def fisher_z_interval(
    R: np.ndarray, n_overlap: np.ndarray, method: str, ci: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fisher-z interval of each rank correlation, (V, V) lower and upper limits; NaN off-support."""
    R = np.asarray(R, dtype=float)
    n = np.asarray(n_overlap, dtype=float)
    z = stats.norm.ppf((1.0 + ci) / 2.0)
    c, k = (1.06, 3.0) if method == "spearman" else (0.437, 4.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(c / (n - k))
        zr = np.arctanh(np.clip(R, -1.0, 1.0))
        lo, hi = np.tanh(zr - z * se), np.tanh(zr + z * se)
    bad = ~np.isfinite(R) | (n <= k)
    lo[bad] = np.nan
    hi[bad] = np.nan
    eye = np.eye(R.shape[0], dtype=bool)
    lo[eye & ~bad], hi[eye & ~bad] = 1.0, 1.0
    return lo, hi


def correlation_p_values(R: np.ndarray, n_overlap: np.ndarray, method: str) -> np.ndarray:
    """Two-sided p of each ``R[u, v] = 0``, as `scipy.stats.spearmanr` / `kendalltau` compute it.

    Spearman: ``t = r sqrt((n - 2) / (1 - r^2))`` on n - 2 degrees of freedom; Kendall: the normal
    approximation ``z = 3 tau sqrt(n (n - 1)) / sqrt(2 (2n + 5))``. Used for the R entries instead
    of the permutation p because Holm over all pairs needs p-values below 1 / (B + 1) (0.05 / 45 =
    0.0011 at basic level); the calibration tests check their level under the permutation null's
    assumption (independent columns). NaN on the diagonal and where R is undefined.
    """
    R = np.asarray(R, dtype=float)
    n = np.asarray(n_overlap, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        if method == "spearman":
            tt = R * np.sqrt((n - 2.0) / np.maximum(1.0 - R * R, 0.0))
            p = 2.0 * stats.t.sf(np.abs(tt), n - 2.0)
        else:
            z = 3.0 * R * np.sqrt(n * (n - 1.0)) / np.sqrt(2.0 * (2.0 * n + 5.0))
            p = 2.0 * stats.norm.sf(np.abs(z))
    p = np.where(np.isfinite(R) & (n > 2), p, np.nan)
    p[np.eye(R.shape[0], dtype=bool)] = np.nan
    return p


def hub_rank_frequency(R_resampled: np.ndarray, k: int) -> np.ndarray:
    """Share of resamples (B, V, V) in which each value is among the k strongest hubs."""
    B, V = R_resampled.shape[0], R_resampled.shape[-1]
    if B == 0 or k <= 0:
        return np.full(V, np.nan)
    h = _hub_batch(R_resampled)
    h = np.where(np.isfinite(h), h, -np.inf)
    # Ties broken by value order, as `hubs` does (stable sort of -h).
    top = np.argsort(-h, axis=1, kind="stable")[:, : min(k, V)]
    counts = np.zeros(V)
    valid = np.take_along_axis(h, top, axis=1) > -np.inf
    np.add.at(counts, top[valid], 1.0)
    return counts / B


@dataclass(frozen=True)
class MantelResult:
    null_mean: float
    p_value: float
    n_permutations: int


def mantel_circumplex(
    R: np.ndarray,
    angles: Any,
    *,
    n_permutations: int,
    seed: int | None,
) -> MantelResult:
    """Mantel-style null of circumplex consistency: value labels permuted (see module doc).
    ``angles``: each column's angle on the circle, radians."""
    ang = np.asarray(angles, dtype=float)
    V = len(ang)
    B = int(n_permutations)
    i, j = np.triu_indices(V, 1)
    r = np.asarray(R, dtype=float)[i, j]
    keep = np.isfinite(r)
    if B == 0 or keep.sum() < 3:
        return MantelResult(_NAN, _NAN, 0)
    E = np.round(np.cos(ang[:, None] - ang[None, :]), 12)
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((B, V)), axis=1)
    E_obs = E[i, j][keep]
    E_perm = E[perms[:, i], perms[:, j]][:, keep]  # (B, pairs)
    r_rank = stats.rankdata(r[keep])
    rx = r_rank - r_rank.mean()

    def spearman_rows(X: np.ndarray) -> np.ndarray:
        ranks = stats.rankdata(X, axis=-1)
        ranks = ranks - ranks.mean(axis=-1, keepdims=True)
        den = np.sqrt((ranks**2).sum(axis=-1) * (rx**2).sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, ranks @ rx / den, np.nan)

    obs = float(spearman_rows(E_obs[None, :])[0])
    null = spearman_rows(E_perm)
    null = null[np.isfinite(null)]
    if not np.isfinite(obs) or null.size == 0:
        return MantelResult(_NAN, _NAN, B)
    p = (1.0 + np.count_nonzero(np.abs(null) >= abs(obs) - 1e-12)) / (1.0 + null.size)
    return MantelResult(float(np.mean(null)), float(p), B)
