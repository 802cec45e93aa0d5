"""Structure statistics: does a coupling matrix, or a profile of shifts, follow a declared structure?

Pure functions of plain arrays; the caller passes the structure (circle slots, angles, cluster
labels), so they serve any value system (Schwartz's circle, the Moral Foundations' two clusters).

- **RTHOR** (`rthor`; Hubert and Arabie 1987): the randomization test of hypothesized order
  relations. A hypothesis ranks the variable pairs (on a circle: nearer pairs couple more); its
  correspondence index ``CI = (agreements - violations) / predictions`` is in [-1, 1], and the
  null relabels the variables: all ``k!`` relabelings up to ``k = 8``, Monte Carlo beyond.
- **Structural summary method** (`cosine_profile`): least-squares fit of
  ``y_v = e + a cos(theta_v - d)`` to a profile over the circle (elevation e, amplitude a >= 0,
  displacement d, R^2), with a permutation null that shuffles the profile over the angles.
- **Cluster contrast** (`cluster_contrast`): mean within-cluster minus mean between-cluster
  coupling, with a null that permutes the cluster labels.

Every p-value is a permutation p of a statistic at least as large as observed (one-sided,
"structured as declared"). With all ``k!`` relabelings enumerated, ``p = #{stat_b >= obs} / k!``
(the identity is one of them); with B random ones, ``p = (1 + #{stat_b >= obs}) / (1 + B)``.
A result is NaN (never an exception) where the data cannot test it: too few finite values, or no
prediction left. Input of the wrong shape raises `ValueError`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "ClusterContrast",
    "CosineProfile",
    "RthorResult",
    "circular_distance",
    "cluster_contrast",
    "cosine_profile",
    "rthor",
]

_NAN = float("nan")
_TOL = 1e-12  # a permuted statistic within this of the observed one counts as ">="
#: RTHOR enumerates all k! relabelings up to this k (8! = 40,320), as RTHORR and `rthor` do.
RTHOR_MAX_EXACT = 8
_CHUNK_ELEMENTS = 2_000_000  # bounds the (permutations x pairs) working arrays

RngLike = np.random.Generator | int | None


def _permutations(k: int, n_perm: int, rng: RngLike, exact: bool) -> np.ndarray:
    """All k! permutations of range(k) (lexicographic, identity first) or n_perm random ones."""
    if exact:
        return np.array(list(itertools.permutations(range(k))), dtype=np.intp).reshape(-1, k)
    gen = np.random.default_rng(rng)
    return np.argsort(gen.random((int(n_perm), k)), axis=1)


def _p_greater(null: np.ndarray, obs: float, exact: bool) -> float:
    """One-sided permutation p of ``obs`` against the finite null statistics (see module doc)."""
    null = null[np.isfinite(null)]
    if not np.isfinite(obs) or null.size == 0:
        return _NAN
    hits = np.count_nonzero(null >= obs - _TOL)
    return float(hits / null.size if exact else (1.0 + hits) / (1.0 + null.size))


def _check_n_perm(n_perm: int) -> int:
    if isinstance(n_perm, bool) or int(n_perm) != n_perm or n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    return int(n_perm)


def _square(R: Any) -> np.ndarray:
    m = np.asarray(R, dtype=float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the coupling matrix must be square, got shape {m.shape}")
    return m


# --------------------------------------------------------------------------------------------------
# RTHOR


def circular_distance(positions: Sequence[int], n_slots: int | None = None) -> np.ndarray:
    """Circular distance ``d(u, v) = min(|s_u - s_v|, n_slots - |s_u - s_v|)`` between slots.

    ``positions`` are integer slots in ``[0, n_slots)``; ``n_slots`` defaults to
    ``max(positions) + 1``. Variables may share a slot (distance 0), as Schwartz's conformity and
    tradition share one of 9. Returns a (k, k) integer matrix.
    """
    s = np.asarray(positions)
    if s.ndim != 1 or (s.size and not np.issubdtype(s.dtype, np.integer)):
        raise ValueError(f"positions must be a 1-D sequence of integer slots, got {positions!r}")
    n = int(s.max()) + 1 if n_slots is None and s.size else int(n_slots or 0)
    if s.size and (s.min() < 0 or s.max() >= n):
        raise ValueError(f"slots must lie in [0, {n}), got {s.tolist()}")
    gap = np.abs(s[:, None] - s[None, :])
    return np.minimum(gap, n - gap)


@dataclass(frozen=True)
class RthorResult:
    """RTHOR fit of a coupling matrix to an order hypothesis (see `rthor`)."""

    ci: float  # correspondence index (agreements - violations) / predictions, in [-1, 1]
    p_value: float  # share of relabelings with CI >= observed
    n_perm: int  # relabelings the p-value is over (k! when exact)
    exact: bool  # all k! relabelings enumerated
    predictions: int  # hypothesized order relations between finite entries
    agreements: int
    violations: int
    ties: int


def _rthor_S(r: np.ndarray, order: np.ndarray) -> np.ndarray:
    """``agreements - violations`` of each row of pair correlations r (B, N), via ranks.

    With ``U_h`` the pairs of order <= h and ``rho`` the mid-rank among the finite entries of
    ``U_h`` (n of them), ``sum_{q in U_h} sign(r_p - r_q) = 2 rho_p - n - 1``; summed over the pairs
    p of order < h this is ``sum_{p < h, q = h} sign(r_p - r_q)`` (pairs within one level cancel),
    the predictions against level h. Summing over h counts every prediction once, in
    O(levels N log N) per relabeling instead of O(predictions).
    """
    S = np.zeros(r.shape[0])
    for h in np.unique(order[np.isfinite(order)])[1:]:
        upto = order <= h
        below = order[upto] < h
        x = r[:, upto]
        rho = stats.rankdata(x, axis=1, nan_policy="omit")
        n = np.isfinite(x).sum(axis=1, keepdims=True)
        S += np.where(np.isfinite(rho) & below, 2.0 * rho - n - 1.0, 0.0).sum(axis=1)
    return S


def _rthor_P(fin: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Predictions between finite entries, ``sum_{g < h} n_g n_h``, for each row of fin (B, N)."""
    levels = np.unique(order[np.isfinite(order)])
    if levels.size < 2:
        return np.zeros(fin.shape[0], dtype=np.int64)
    counts = np.stack([(fin & (order == g)).sum(axis=1) for g in levels], axis=1)
    below = np.cumsum(counts, axis=1) - counts
    return (below * counts).sum(axis=1)


def rthor(
    R: Any,
    positions: Any,
    n_slots: int | None = None,
    *,
    n_perm: int = 9999,
    rng: RngLike = None,
    max_exact: int = RTHOR_MAX_EXACT,
) -> RthorResult:
    """Randomization test of hypothesized order relations (Hubert and Arabie 1987).

    ``R`` is a symmetric (k, k) correlation or coupling matrix; only its upper triangle is read
    (diagonal ignored, NaN entries allowed). ``positions`` is either

    - (k,) integer circle slots on a circle of ``n_slots`` (default ``max + 1``): the circumplex
      hypothesis orders the pairs by `circular_distance`, nearer pairs predicted to correlate
      more; shared slots (distance 0) are predicted above every other pair; or
    - a (k, k) order matrix (upper triangle read): pair p is predicted to correlate more than pair
      q whenever ``order_p < order_q``; NaN means no prediction for that pair. This is the
      ``order`` vector of RTHORR and the `rthor` package laid out as a matrix (their
      ``"circular6"`` preset is ``circular_distance(range(6))``).

    Each prediction ``order_p < order_q`` with both entries finite is an agreement if
    ``r_p > r_q``, a violation if ``r_p < r_q``, a tie if equal (exact float equality); then
    ``CI = (agreements - violations) / predictions``, ties counted in the denominator only (as
    RTHORR). The p-value is the share of relabelings (rows and columns of R permuted together)
    whose CI is at least the observed one: all k! when ``k <= max_exact``, else ``n_perm`` random
    ones, seeded by ``rng``. RTHORR and `rthor` rank relabelings by the agreement count, which
    orders them the same way unless the data tie or NaN entries move; their exact p also
    counts the identity twice and skips the last (reversing) relabeling, which changes nothing
    when the reversal preserves the hypothesis (every equally spaced circle).

    NaN when fewer than 3 variables or no prediction between finite entries remains.
    """
    R = _square(R)
    k = R.shape[0]
    n_perm = _check_n_perm(n_perm)
    pos = np.asarray(positions)
    if pos.ndim == 1:
        if pos.shape[0] != k:
            raise ValueError(f"{pos.shape[0]} positions for a {k} x {k} matrix")
        order_m = circular_distance(pos, n_slots).astype(float)
    elif pos.shape == (k, k):
        order_m = pos.astype(float)
    else:
        raise ValueError(f"positions must be (k,) slots or a (k, k) order, got shape {pos.shape}")
    i, j = np.triu_indices(k, 1)
    order = order_m[i, j]
    r = R[i, j]
    fin = np.isfinite(r)
    P = int(_rthor_P(fin[None, :], order)[0]) if k >= 3 else 0
    if P == 0:
        return RthorResult(_NAN, _NAN, 0, False, 0, 0, 0, 0)
    o_ok = np.isfinite(order) & fin
    lo, hi = np.nonzero((order[:, None] < order[None, :]) & o_ok[:, None] & o_ok[None, :])
    diff = r[lo] - r[hi]  # > 0: the pair predicted larger is larger
    agree, viol = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    ci = (agree - viol) / P
    exact = k <= max_exact
    perms = _permutations(k, n_perm, rng, exact)
    null = []
    step = max(1, _CHUNK_ELEMENTS // max(1, i.size))
    for s in range(0, perms.shape[0], step):
        pb = perms[s : s + step]
        rb = R[pb[:, i], pb[:, j]]  # (b, pairs): R relabeled, as RTHORR's dmat[perm, perm]
        with np.errstate(invalid="ignore", divide="ignore"):
            null.append(_rthor_S(rb, order) / _rthor_P(np.isfinite(rb), order))
    p = _p_greater(np.concatenate(null), ci, exact)
    return RthorResult(ci, p, perms.shape[0], exact, P, agree, viol, P - agree - viol)


# --------------------------------------------------------------------------------------------------
# structural summary method


@dataclass(frozen=True)
class CosineProfile:
    """Cosine fit ``y_v = e + a cos(theta_v - d)`` of a profile over the circle (`cosine_profile`)."""

    elevation: float  # e: the profile's level, the common shift
    amplitude: float  # a >= 0: how strongly the profile follows the circle
    displacement: float  # d in degrees, [0, 360): where the fitted profile peaks
    r_squared: float  # share of the profile's variance the cosine explains
    p_value: float  # permutation p of R^2 (profile shuffled over the angles)
    n_perm: int
    exact: bool
    n_values: int  # values entering the fit
    target_distance: float  # angular distance |d - target| in degrees, [0, 180]; NaN if no target
    target_loading: float  # a cos(d - target): the fitted peak's projection on the target
    p_target: float  # permutation p of target_loading (one-sided: peak towards the target)


def cosine_profile(
    profile: Any,
    angles_rad: Any,
    target_angle: float | None = None,
    *,
    mask: Any = None,
    n_perm: int = 9999,
    rng: RngLike = None,
) -> CosineProfile:
    """Structural summary method: least-squares cosine fit of a profile over circle angles.

    ``y_v = e + b1 cos(theta_v) + b2 sin(theta_v)`` is ordinary least squares on the design
    ``[1, cos theta, sin theta]``; then ``a = sqrt(b1^2 + b2^2)`` and ``d = atan2(b2, b1)``
    (degrees, in [0, 360); NaN when a = 0), since ``a cos(theta - d) = a cos d cos theta +
    a sin d sin theta``. ``R^2 = 1 - SSE / SST`` with ``SST = sum (y_v - mean y)^2``.
    With a ``target_angle`` (radians) also ``target_distance``, the angle between d and the
    target (the prediction "the profile peaks at the target"), and ``target_loading``
    ``= a cos(d - t) = b1 cos t + b2 sin t``, the profile's slope along ``cos(theta - t)``.

    The values used are those with a finite profile entry and ``mask`` True (default all): the
    caller excludes the target itself with the mask. The null shuffles the profile over the angles
    (values exchangeable: no link between a value's shift and its place on the circle):
    ``p_value`` for R^2 (equivalent to the amplitude for equally spaced angles) and ``p_target``
    for ``target_loading``. All n! shuffles when ``n! <= n_perm``, else ``n_perm`` random ones.

    NaN when fewer than 3 values remain, the angles do not span a cosine (fewer than 3 distinct
    points on the circle), or (for R^2 and its p) the profile is constant.
    """
    y = np.asarray(profile, dtype=float).ravel()
    th = np.asarray(angles_rad, dtype=float).ravel()
    if y.shape != th.shape:
        raise ValueError(f"profile has {y.size} entries but angles_rad {th.size}")
    keep = np.isfinite(y) & np.isfinite(th)
    if mask is not None:
        m = np.asarray(mask, dtype=bool).ravel()
        if m.shape != y.shape:
            raise ValueError(f"mask has {m.size} entries for {y.size} values")
        keep &= m
    n_perm = _check_n_perm(n_perm)
    y, th = y[keep], th[keep]
    n = y.size
    X = np.column_stack([np.ones(n), np.cos(th), np.sin(th)])
    if n < 3 or np.linalg.matrix_rank(X) < 3:
        return CosineProfile(*([_NAN] * 5), 0, False, n, *([_NAN] * 3))
    C = np.linalg.pinv(X)  # (3, n): coefficients = C @ y
    has_t = target_angle is not None
    t = float(target_angle) if has_t else 0.0
    u = np.array([0.0, np.cos(t), np.sin(t)])
    sst = float(np.sum((y - y.mean()) ** 2))

    def fit(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B = Y @ C.T  # (b, 3)
        sse = np.sum((Y - B @ X.T) ** 2, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            r2 = np.where(sst > 0, 1.0 - sse / sst, np.nan)
        return B, np.clip(r2, 0.0, 1.0), B @ u

    (e, b1, b2), r2, load = (v[0] for v in fit(y[None, :]))
    a = float(np.hypot(b1, b2))
    flat = a <= 1e-12 * max(1.0, float(np.max(np.abs(y))))  # no direction to speak of
    d = _NAN if flat else float(np.degrees(np.arctan2(b2, b1)) % 360.0)
    exact = math.factorial(n) <= n_perm
    perms = _permutations(n, n_perm, rng, exact)
    _, r2_null, load_null = fit(y[perms])
    gap = abs((d - np.degrees(t) + 180.0) % 360.0 - 180.0)  # NaN with d
    return CosineProfile(
        elevation=float(e),
        amplitude=a,
        displacement=d,
        r_squared=float(r2),
        p_value=_p_greater(r2_null, float(r2), exact),
        n_perm=perms.shape[0],
        exact=exact,
        n_values=n,
        target_distance=float(gap) if has_t else _NAN,
        target_loading=float(load) if has_t else _NAN,
        p_target=_p_greater(load_null, float(load), exact) if has_t else _NAN,
    )


# --------------------------------------------------------------------------------------------------
# clusters


@dataclass(frozen=True)
class ClusterContrast:
    """Within- minus between-cluster coupling (see `cluster_contrast`)."""

    contrast: float  # within - between
    within: float  # mean coupling over finite pairs in the same cluster
    between: float  # mean coupling over finite pairs in different clusters
    p_value: float  # one-sided (greater), labels permuted among the clustered variables
    n_perm: int
    exact: bool
    n_within: int  # finite within-cluster pairs
    n_between: int  # finite between-cluster pairs


def cluster_contrast(
    coupling: Any,
    labels: Sequence[Hashable | None],
    *,
    n_perm: int = 9999,
    rng: RngLike = None,
) -> ClusterContrast:
    """Two-(or more-)cluster structure: ``mean_{same cluster} R - mean_{different clusters} R``.

    ``coupling`` is a symmetric (k, k) matrix (upper triangle read, NaN allowed off the diagonal);
    ``labels[v]`` names v's cluster, or is None for a variable that stands apart (liberty among
    the Moral Foundations). Only pairs of two clustered variables with a finite entry count;
    unclustered variables enter neither mean. The null permutes the labels among the clustered
    variables (cluster sizes kept): all m! orders when ``m! <= n_perm``, else ``n_perm`` random
    ones; p is one-sided (within above between).

    The permutation p cannot go below one over the number of distinct labelings: the Moral
    Foundations' {care, fairness} vs {loyalty, authority, sanctity} has 5! / (2! 3!) = 10, so
    alone it can never reach p < 0.1.

    NaN when there are fewer than two clusters, or no finite within- or between-cluster pair.
    """
    R = _square(coupling)
    k = R.shape[0]
    if len(labels) != k:
        raise ValueError(f"{len(labels)} labels for a {k} x {k} matrix")
    n_perm = _check_n_perm(n_perm)
    idx = np.array([v for v, lab in enumerate(labels) if lab is not None], dtype=np.intp)
    names = list(dict.fromkeys(labels[v] for v in idx))
    codes = np.array([names.index(labels[v]) for v in idx], dtype=np.intp)
    m = idx.size
    i, j = np.triu_indices(m, 1)
    r = R[idx[i], idx[j]]
    fin = np.isfinite(r)
    i, j, r = i[fin], j[fin], r[fin]

    def stat(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        same = lab[:, i] == lab[:, j]  # (b, pairs)
        nw = same.sum(axis=1)
        nb = r.size - nw
        with np.errstate(invalid="ignore", divide="ignore"):
            w = np.where(same, r, 0.0).sum(axis=1) / nw
            b = np.where(same, 0.0, r).sum(axis=1) / nb
        return w - b, w, b, nw

    c, w, b, nw = (v[0] for v in stat(codes[None, :]))
    nw = int(nw)
    if len(names) < 2 or nw == 0 or nw == r.size:
        return ClusterContrast(_NAN, _NAN, _NAN, _NAN, 0, False, nw, int(r.size - nw))
    exact = math.factorial(m) <= n_perm
    perms = _permutations(m, n_perm, rng, exact)
    null = np.concatenate(
        [stat(codes[perms[s : s + 4096]])[0] for s in range(0, perms.shape[0], 4096)]
    )
    p = _p_greater(null, float(c), exact)
    return ClusterContrast(float(c), float(w), float(b), p, perms.shape[0], exact, nw, r.size - nw)
