"""First-order VAT: what moved on average (shift, gain, tax, GND), aggregation and trajectories."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vat.metrics._common import (
    _NAN,
    DEFAULT_EPS,
    _as_matrix,
    _check_eps,
    _check_index,
    _gain_ok,
    _nanmean,
    _spearman_1d,
)
from vat.taxonomy import Taxonomy

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
# aggregation


def micro_to_basic_state(
    S_micro: Any, taxonomy: Taxonomy, micro_names: Sequence[str] | None = None
) -> np.ndarray:
    """Aggregate a micro-level state (n_scenes, n_micro) to the taxonomy's values.

    ``S[x, v] = mean over the micro-values m of v present in scene x of S_micro[x, m]``: every
    micro-value weighs the same whatever its number of items. Columns follow
    ``taxonomy.value_names``; ``micro_names`` (default ``taxonomy.micro_names``) name the input's
    columns. A value without any micro column (or none present in a scene) is NaN there.
    """
    S = _as_matrix(S_micro, "S_micro")
    micro_names = taxonomy.micro_names if micro_names is None else micro_names
    names = [taxonomy.normalize_micro_value(m) for m in micro_names]
    if len(names) != S.shape[1]:
        raise ValueError(f"{len(names)} micro-value names for {S.shape[1]} columns")
    if len(set(names)) != len(names):
        raise ValueError("duplicate micro-value names")
    parent = np.array([taxonomy.value_of(m) for m in names])
    out = np.full((S.shape[0], len(taxonomy.value_names)), np.nan)
    for j, v in enumerate(taxonomy.value_names):
        cols = np.flatnonzero(parent == v)
        if cols.size:
            out[:, j] = _nanmean(S[:, cols], axis=1)
    return out


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
    # inference (NaN / None where the inputs to it were not given)
    p_monotonicity: float = _NAN  # exact permutation test of the Spearman trend (n <= 8 points)
    sign_flips_beyond_noise: int | None = None  # flips between points whose gain CIs exclude 0
    volatility_noise: float = _NAN  # what the volatility reads from scene noise alone


def stability(
    strengths: Sequence[float],
    gains: Sequence[float],
    gnds: Sequence[float] | None = None,
    nvats: Sequence[float] | None = None,
    *,
    gain_ci: Sequence[tuple[float, float]] | None = None,
    target_shifts: Any = None,
) -> StabilityProfile:
    """Summarise how G behaves as an intervention gets stronger (checkpoints, few-shot k, ...).

    Points are sorted by strength (stable), and undefined gains are dropped from the summaries:

    - ``monotonicity`` = Spearman correlation of G against strength (+1: G only grows);
    - ``sign_flips`` = number of times G changes sign between successive points (zeros skipped);
    - ``volatility`` = population std (ddof=0) of the successive changes ``np.diff(G)``, in score
      units (NaN with fewer than two points).

    The sorted raw trajectory (G, GND, nVAT) is returned alongside; missing GND/nVAT are NaN.

    Inference, all points measured on the same scenes:

    - ``p_monotonicity``: exact permutation p of |Spearman| (every ordering of up to 8 points; a
      Monte Carlo draw of 40,320 beyond); 3 points can never reach p < 0.05 (the smallest p is 1/3);
    - ``sign_flips_beyond_noise`` (with `gain_ci`, each point's gain interval): flips between
      successive points whose intervals both exclude 0;
    - ``volatility_noise`` (with `target_shifts`, (points, scenes) per-scene target shifts): the
      volatility the successive changes would show from scene sampling alone,
      ``sqrt(mean_i Var_x(D_{i+1}[x, t] - D_i[x, t]) / n_x)`` (paired by scene); a volatility well
      above it is movement the noise does not explain.
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
    p_mono = _permutation_trend_p(s[keep], gk)
    flips_sig = None
    if gain_ci is not None:
        ci = np.asarray(gain_ci, dtype=float).reshape(k, 2)[order][keep]
        sure = np.where(ci[:, 0] > 0, 1, np.where(ci[:, 1] < 0, -1, 0))
        flips_sig = int(np.count_nonzero((sure[1:] * sure[:-1]) < 0))
    vol_noise = _NAN
    if target_shifts is not None:
        T = np.asarray(target_shifts, dtype=float)
        if T.shape[0] != k:
            raise ValueError(f"target_shifts has {T.shape[0]} points, strengths has {k}")
        d = np.diff(T[order][keep], axis=0)
        n = np.isfinite(d).sum(axis=1)
        if d.shape[0] and (n > 1).all():
            var = np.nanvar(d, axis=1, ddof=1) / n
            vol_noise = float(np.sqrt(np.mean(var)))
    return StabilityProfile(
        strengths=tuple(float(x) for x in s),
        gains=tuple(float(x) for x in g),
        gnds=tuple(float(x) for x in gd),
        nvats=tuple(float(x) for x in nv),
        monotonicity=_spearman_1d(s[keep], gk),
        sign_flips=int(np.count_nonzero(signs[1:] != signs[:-1])),
        volatility=float(np.std(steps)) if steps.size else _NAN,
        p_monotonicity=p_mono,
        sign_flips_beyond_noise=flips_sig,
        volatility_noise=vol_noise,
    )


def _permutation_trend_p(s: np.ndarray, g: np.ndarray) -> float:
    """Two-sided permutation p of Spearman(s, g) (`scipy.stats.permutation_test`, pairings): exact
    over every ordering for up to 8 points, 40,320 random orderings beyond."""
    from scipy import stats

    if g.size < 3 or not np.isfinite(_spearman_1d(s, g)):
        return _NAN
    rg = stats.rankdata(g)
    rg = rg - rg.mean()

    def spearman(x, axis=-1):  # vectorised over permutations: Pearson of ranks against g's
        rx = stats.rankdata(x, axis=axis)
        rx = rx - rx.mean(axis=axis, keepdims=True)
        return (rx * rg).sum(axis=axis) / np.sqrt((rx**2).sum(axis=axis) * (rg**2).sum())

    res = stats.permutation_test(
        (s,), spearman, permutation_type="pairings", vectorized=True, n_resamples=40320,
        alternative="two-sided", rng=0,
    )  # fmt: skip
    return float(res.pvalue)
