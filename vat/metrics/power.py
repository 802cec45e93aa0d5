"""Power, stated: the smallest effect a design could have detected, by simulation from its noise.

A **design** is ``n_scenes`` held-out scenes x ``n_seeds`` training seeds, measured on V values.
Its noise (`NoiseModel`) has three parts, per (seed s, scene x) the shift
``D[s, x] = mu + u[x] + b[s] + e[s, x]``:

- ``scene_cov`` (V, V): ``u[x]``, how a scene moves the values, the same for every seed;
- ``resid_cov`` (V, V): ``e[s, x]``, what differs between seeds on the same scene;
- ``seed_cov`` (V, V): ``b[s]``, one offset per seed shared by all its scenes.

`estimate_noise` fits them to observed shifts (seeds, scenes, values) by the two-way ANOVA
moments; from one run only their sum is seen and it is all put in ``scene_cov``, so more seeds
buy nothing in the simulation (the conservative reading). `noise_model` builds one from a scene SD,
a correlation, the share of the scene variance that is seed x scene residual, and a seed SD.

**Simulation where the truth is known**: plant an effect of size ``delta``, draw ``n_sim``
datasets of the design, run the same test the report runs, and count rejections: the power.
The same draws serve every ``delta`` (common random numbers), so power is a deterministic step
function of ``delta`` and the **minimum detectable effect** (MDE, the smallest ``delta`` with power
>= the target) is found by bisection to 0.1 % of its size. Its Monte Carlo error is that of a
power near 0.8 over ``n_sim`` draws: ``sqrt(0.16 / n_sim)`` (0.013 at 1,000, 0.009 at 2,000),
which moves the MDE by a few per cent (the tests measure it). Kinds, with the test and the unit:

- ``gain``: ``mu_t = delta`` (score units); two-sided test of the target's mean shift, studentised
  by the two-level SE of `vat.metrics.repeats` (``Var_x(seed mean) / X + Var_s(seed mean) / S``);
  critical value the t quantile on ``X - 1`` df with one seed and no seed variance (the
  bootstrap-t matches the t test on normal shifts), else simulated under ``delta = 0``: one run's
  SE cannot see the seed-to-seed variance, so its own test rejects more than alpha over seeds,
  and the simulated critical value is the one that holds alpha.
- ``gnd``: every off-target value drifts by ``delta |gain|`` (signs alternating), so the true GND
  is ``delta`` (needs ``gain``); the test is `compute_vat`'s ``p_drift`` (Holm over the per-value
  tests, which rejects exactly when Bonferroni does): ``max_v |t_v| > t_{1 - alpha / (2 m)}`` with
  one seed and no seed variance, its simulated null quantile otherwise (as for the gain).
- ``nvat``: the seed-mean scene shifts of all V values get an equicorrelation ``rho`` (the noise's
  own correlation removed: the null is independent columns, as the column-permutation null);
  the test is the RMS off-diagonal Spearman ``nvat_offdiag`` above its null's ``1 - alpha``
  quantile. The unit is the debiased nVAT the planted coupling gives, the Spearman
  ``(6 / pi) asin(rho / 2)``. Ranks do not see the noise scale or the seeds: this power depends on
  ``n_scenes`` and V only.
- ``prediction``: the mean shifts of the predicted values get ``delta * (w - mean w) / sd(w)``
  (the planted pattern's SD across values is ``delta``, score units) on top of the profile noise
  ``N(0, scene_cov / X + resid_cov / (X S) + seed_cov / S)``; the test is `prediction_test`'s
  label-permutation p < alpha (needs ``weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

from vat.metrics.prediction import _p_greater, _permutations, agreement

__all__ = [
    "KINDS",
    "MDEResult",
    "NoiseModel",
    "PowerResult",
    "estimate_noise",
    "minimum_detectable_effect",
    "noise_model",
    "power_at",
]

Kind = Literal["gain", "gnd", "nvat", "prediction"]
KINDS = ("gain", "gnd", "nvat", "prediction")
UNITS = {"gain": "score units", "gnd": "GND (ratio to |gain|)", "nvat": "debiased nVAT",
         "prediction": "SD of the planted pattern across values, score units"}  # fmt: skip
_CHUNK = 2_000_000  # elements per vectorised block


@dataclass(frozen=True)
class NoiseModel:
    """Variance components of the shifts (see the module doc); (V, V) covariances."""

    scene_cov: np.ndarray
    resid_cov: np.ndarray
    seed_cov: np.ndarray

    @property
    def n_values(self) -> int:
        return self.scene_cov.shape[0]

    def subset(self, idx: Any) -> NoiseModel:
        ix = np.ix_(idx, idx)
        return NoiseModel(self.scene_cov[ix], self.resid_cov[ix], self.seed_cov[ix])

    def profile_cov(self, n_scenes: int, n_seeds: int) -> np.ndarray:
        """Covariance of the mean shifts over X scenes and S seeds."""
        X, S = n_scenes, n_seeds
        return self.scene_cov / X + self.resid_cov / (X * S) + self.seed_cov / S


def _psd_sqrt(C: np.ndarray) -> np.ndarray:
    """A matrix L with L L' = C (negative eigenvalues from estimation clipped at 0)."""
    vals, vecs = np.linalg.eigh((C + C.T) / 2.0)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))


def _clip_psd(C: np.ndarray) -> np.ndarray:
    L = _psd_sqrt(C)
    return L @ L.T


def noise_model(noise: Any, *, n_values: int | None = None, corr: float = 0.0,
                resid_share: float = 0.0, seed_sd: Any = 0.0) -> NoiseModel:  # fmt: skip
    """A `NoiseModel` from one run's scene noise, or the model itself passed through.

    ``noise``: a scalar SD (then ``n_values`` values, equicorrelated ``corr``), a (V,) SD per value
    (equicorrelated ``corr``), or a (V, V) covariance: the scene-to-scene covariance of one run's
    shifts. ``resid_share`` of it differs between seeds (averages out over seeds), the rest is the
    scene's own; ``seed_sd`` (scalar or (V,)) is the between-seed SD of a run's mean shift.
    """
    if isinstance(noise, NoiseModel):
        return noise
    a = np.asarray(noise, dtype=float)
    if a.ndim == 2:
        if a.shape[0] != a.shape[1]:
            raise ValueError(f"a noise covariance must be square, got shape {a.shape}")
        cov = a
    else:
        sd = np.broadcast_to(a, (n_values,)) if a.ndim == 0 and n_values else a.ravel()
        if a.ndim == 0 and not n_values:
            raise ValueError("a scalar noise SD needs n_values")
        if not -1.0 / max(1, sd.size - 1) <= corr < 1.0:
            raise ValueError(f"corr must be in [-1 / (V - 1), 1), got {corr}")
        C = np.full((sd.size, sd.size), float(corr))
        np.fill_diagonal(C, 1.0)
        cov = C * np.outer(sd, sd)
    if not 0.0 <= resid_share <= 1.0:
        raise ValueError(f"resid_share must be in [0, 1], got {resid_share}")
    if np.any(np.diag(cov) < 0) or not np.all(np.isfinite(cov)):
        raise ValueError("the noise covariance must be finite with a non-negative diagonal")
    ssd = np.broadcast_to(np.asarray(seed_sd, dtype=float), (cov.shape[0],))
    return NoiseModel((1.0 - resid_share) * cov, resid_share * cov, np.diag(ssd**2))


def estimate_noise(D: Any) -> NoiseModel:
    """Variance components from observed shifts, (seeds, scenes, values) or (scenes, values).

    Two-way ANOVA moments on the complete scenes: ``resid_cov`` from the seed x scene interaction
    (``(S - 1)(X - 1)`` df), ``scene_cov = Cov_x(seed mean) - resid_cov / S``, ``seed_cov =
    Cov_s(scene mean) - resid_cov / X``, each clipped to positive semi-definite. One seed: all of
    the scene covariance is ``scene_cov`` (residual and seed parts are not identifiable).
    """
    D = np.asarray(D, dtype=float)
    D = D[None] if D.ndim == 2 else D
    if D.ndim != 3:
        raise ValueError(f"expected (seeds, scenes, values) shifts, got shape {D.shape}")
    D = D[:, np.isfinite(D).all(axis=(0, 2))]
    S, X, V = D.shape
    if X < 3:
        raise ValueError(f"{X} complete scenes: too few to estimate the noise")
    scene_mean = D.mean(axis=0)  # (X, V)
    if S == 1:
        z = np.zeros((V, V))
        return NoiseModel(np.cov(scene_mean, rowvar=False).reshape(V, V), z, z.copy())
    seed_mean = D.mean(axis=1)  # (S, V)
    r = D - scene_mean[None] - seed_mean[:, None] + D.mean(axis=(0, 1))
    resid = np.einsum("sxi,sxj->ij", r, r) / ((S - 1) * (X - 1))
    scene = np.cov(scene_mean, rowvar=False).reshape(V, V) - resid / S
    seed = np.cov(seed_mean, rowvar=False).reshape(V, V) - resid / X
    return NoiseModel(_clip_psd(scene), _clip_psd(resid), _clip_psd(seed))


# --------------------------------------------------------------------------------------------------
# simulated designs: draws once, statistic at any delta


def _draw_D(nm: NoiseModel, n_sim: int, X: int, S: int, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean shifts (n_sim, S, X, V) of the noise model."""
    V = nm.n_values
    u = rng.standard_normal((n_sim, 1, X, V)) @ _psd_sqrt(nm.scene_cov).T
    b = rng.standard_normal((n_sim, S, 1, V)) @ _psd_sqrt(nm.seed_cov).T
    e = rng.standard_normal((n_sim, S, X, V)) @ _psd_sqrt(nm.resid_cov).T
    return u + b + e


def _mean_se(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arm estimate and two-level SE per value (`vat.metrics.repeats`): (n_sim, V) each."""
    S, X = D.shape[1], D.shape[2]
    per_scene = D.mean(axis=1)  # (n_sim, X, V)
    est = per_scene.mean(axis=1)
    var = per_scene.var(axis=1, ddof=1) / X
    if S > 1:
        var = var + D.mean(axis=2).var(axis=1, ddof=1) / S
    return est, np.sqrt(var)


class _Design:
    """One kind's simulation: ``stat(draws, delta)`` and the critical value it is compared with."""

    def __init__(self, kind: str, X: int, S: int, nm: NoiseModel, *, alpha: float, target: int,
                 gain: float | None, weights: Any, n_perm: int, rng: np.random.Generator) -> None:  # fmt: skip
        self.kind, self.X, self.S, self.nm, self.alpha = kind, X, S, nm, alpha
        self.t, self.rng = target, rng
        V = nm.n_values
        if kind == "gnd":
            if gain is None or not np.isfinite(gain) or gain == 0:
                raise ValueError("kind='gnd' needs the gain (non-zero): GND is drift / |gain|")
            self.others = np.array([v for v in range(V) if v != target])
            self.signs = np.where(np.arange(self.others.size) % 2 == 0, 1.0, -1.0)
            self.scale = abs(float(gain))
        if kind == "prediction":
            if weights is None:
                raise ValueError("kind='prediction' needs the predicted weights")
            w = np.asarray(list(weights.values()) if hasattr(weights, "values") else weights,
                           dtype=float)  # fmt: skip
            if w.size != V:
                raise ValueError(f"{w.size} weights for a noise model of {V} values")
            if np.ptp(w) == 0:
                raise ValueError("constant weights predict no pattern")
            self.w = w
            self.pattern = (w - w.mean()) / w.std()
            self.perms, self.exact = _permutations(V, n_perm, rng)
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
        self.crit = self._crit()

    def draws(self, n_sim: int, rng: np.random.Generator) -> Any:
        k, X, S = self.kind, self.X, self.S
        if k == "gain":
            return _mean_se(_draw_D(self.nm.subset([self.t]), n_sim, X, S, rng))
        if k == "gnd":
            return _mean_se(_draw_D(self.nm.subset(self.others), n_sim, X, S, rng))
        if k == "nvat":
            V = self.nm.n_values
            return rng.standard_normal((n_sim, X, V)), rng.standard_normal((n_sim, X, 1))
        L = _psd_sqrt(self.nm.profile_cov(X, S))
        return rng.standard_normal((n_sim, self.nm.n_values)) @ L.T

    def stat(self, d: Any, delta: float) -> np.ndarray:
        """The test statistic of every draw with the effect ``delta`` planted (larger = reject)."""
        k = self.kind
        if k == "gain":
            est, se = d
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.abs(est[:, 0] + delta) / se[:, 0]
        if k == "gnd":
            est, se = d
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.max(np.abs(est + delta * self.scale * self.signs) / se, axis=1)
        if k == "nvat":
            z, c = d
            rho = np.clip(np.sin(np.pi * delta / 6.0) * 2.0, 0.0, 1.0)  # Spearman -> Pearson
            return _nvat(np.sqrt(1.0 - rho) * z + np.sqrt(rho) * c)
        obs, null = agreement(d + delta * self.pattern, self.w, "cosine", self.perms)
        return -_p_greater(obs, null, self.exact)  # reject when -p > -alpha

    def _crit(self) -> float:
        m = getattr(self, "others", np.empty(0)).size
        # One seed and no seed variance: the t quantile is exact. One seed *with* seed variance:
        # the run's own SE cannot see it, so that test rejects more than alpha over seeds; the
        # simulated quantile below holds alpha (the MDE of a test that is valid over seeds).
        t_exact = self.S == 1 and not np.any(self.nm.seed_cov)
        if self.kind == "gain" and t_exact:
            return float(stats.t.ppf(1.0 - self.alpha / 2.0, self.X - 1))
        if self.kind == "gnd" and t_exact:
            return float(stats.t.ppf(1.0 - self.alpha / (2.0 * m), self.X - 1))
        if self.kind == "prediction":
            return -self.alpha + 1e-12  # -p > -alpha  <=>  p < alpha (a p of exactly alpha fails)
        null = self.stat(self.draws(4000, self.rng), 0.0)  # simulated null quantile
        return float(np.quantile(null[np.isfinite(null)], 1.0 - self.alpha))

    def power(self, d: Any, delta: float) -> float:
        s = self.stat(d, delta)
        return float(np.mean(np.where(np.isfinite(s), s, -np.inf) > self.crit))


def _nvat(Z: np.ndarray) -> np.ndarray:
    """RMS off-diagonal Spearman of each (X, V) slice of Z (n_sim, X, V)."""
    out = []
    V = Z.shape[2]
    step = max(1, _CHUNK // (Z.shape[1] * V))
    off = ~np.eye(V, dtype=bool)
    for s in range(0, Z.shape[0], step):
        r = stats.rankdata(Z[s : s + step], axis=1)
        r = r - r.mean(axis=1, keepdims=True)
        r = r / np.sqrt((r * r).sum(axis=1, keepdims=True))
        R = np.einsum("bxi,bxj->bij", r, r)
        out.append(np.sqrt((R[:, off] ** 2).mean(axis=1)))
    return np.concatenate(out)


def _setup(kind, n_scenes, n_seeds, noise, alpha, rng, target, gain, weights, n_perm, noise_kw):
    if int(n_scenes) < 3 or int(n_seeds) < 1:
        raise ValueError(f"need n_scenes >= 3 and n_seeds >= 1, got {n_scenes}, {n_seeds}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if kind == "prediction" and weights is not None and np.ndim(noise) == 0:
        noise_kw.setdefault("n_values", len(weights))
    nm = noise_model(noise, **noise_kw)
    gen = np.random.default_rng(rng)
    design = _Design(kind, int(n_scenes), int(n_seeds), nm, alpha=alpha, target=target,
                     gain=gain, weights=weights, n_perm=n_perm, rng=gen)  # fmt: skip
    return design, gen


@dataclass(frozen=True)
class PowerResult:
    """Simulated power of one design at one planted effect (see `power_at`)."""

    kind: str
    delta: float  # planted effect, in `unit`
    power: float
    power_se: float  # Monte Carlo SE, sqrt(power (1 - power) / n_sim)
    n_sim: int
    alpha: float
    n_scenes: int
    n_seeds: int
    unit: str


@dataclass(frozen=True)
class MDEResult:
    """Minimum detectable effect of one design (see `minimum_detectable_effect`)."""

    kind: str
    mde: float  # smallest planted effect with simulated power >= `power`, in `unit`
    power: float  # the target power
    achieved_power: float  # simulated power at `mde`
    power_se: float  # Monte Carlo SE of a power at the target: sqrt(p (1 - p) / n_sim)
    n_sim: int
    alpha: float
    n_scenes: int
    n_seeds: int
    unit: str


def power_at(kind: Kind, delta: float, n_scenes: int, n_seeds: int, noise: Any, *,
             alpha: float = 0.05, n_sim: int = 1000, rng: Any = None, target: int = 0,
             gain: float | None = None, weights: Any = None, n_perm: int = 999,
             **noise_kw: Any) -> PowerResult:  # fmt: skip
    """Simulated power of the ``kind`` test at a planted effect ``delta`` (module doc for units).

    ``noise``: a `NoiseModel`, or a scene SD / per-value SDs / covariance for `noise_model` (its
    keywords ``n_values``, ``corr``, ``resid_share``, ``seed_sd`` pass through). ``target``: the
    target's column (gain, gnd); ``gain``: the gain GND is relative to; ``weights``: the
    prediction (kind ``prediction``; the noise model's values are the predicted ones).
    """
    design, gen = _setup(kind, n_scenes, n_seeds, noise, alpha, rng, target, gain, weights,
                         n_perm, dict(noise_kw))  # fmt: skip
    pw = design.power(design.draws(int(n_sim), gen), float(delta))
    return PowerResult(kind, float(delta), pw, float(np.sqrt(pw * (1 - pw) / n_sim)), int(n_sim),
                       float(alpha), int(n_scenes), int(n_seeds), UNITS[kind])  # fmt: skip


def minimum_detectable_effect(kind: Kind, n_scenes: int, n_seeds: int, noise: Any, *,
                              alpha: float = 0.05, power: float = 0.8, n_sim: int = 1000,
                              rng: Any = None, target: int = 0, gain: float | None = None,
                              weights: Any = None, n_perm: int = 999,
                              **noise_kw: Any) -> MDEResult:  # fmt: skip
    """Smallest planted effect the design detects with probability ``power`` (default 0.8).

    Bisection on common random numbers (the module doc): the bracket is doubled from a tenth of
    the noise scale until the power is reached, then halved 40 times or to 0.1 % of its size.
    NaN when even an effect 2^30 times the start is not detected (e.g. a prediction whose minimum
    attainable p is not below alpha). Arguments as `power_at`.
    """
    if not 0.0 < power < 1.0:
        raise ValueError(f"power must be in (0, 1), got {power}")
    design, gen = _setup(kind, n_scenes, n_seeds, noise, alpha, rng, target, gain, weights,
                         n_perm, dict(noise_kw))  # fmt: skip
    d = design.draws(int(n_sim), gen)
    sd = float(np.sqrt(np.mean(np.diag(design.nm.profile_cov(n_scenes, n_seeds))))) or 1.0
    if kind == "nvat":
        hi, cap = 0.05, 1.0  # a Spearman correlation
    else:
        hi = 0.1 * sd / (design.scale if kind == "gnd" else 1.0)
        cap = hi * 2.0**30
    lo = 0.0
    while design.power(d, hi) < power:
        if hi >= cap:
            return MDEResult(kind, float("nan"), power, design.power(d, hi),
                             float(np.sqrt(power * (1 - power) / n_sim)), int(n_sim),
                             float(alpha), int(n_scenes), int(n_seeds), UNITS[kind])  # fmt: skip
        lo, hi = hi, min(cap, hi * 2.0)
    for _ in range(40):
        if hi - lo <= 1e-3 * hi:
            break
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if design.power(d, mid) < power else (lo, mid)
    return MDEResult(kind, float(hi), float(power), design.power(d, hi),
                     float(np.sqrt(power * (1 - power) / n_sim)), int(n_sim), float(alpha),
                     int(n_scenes), int(n_seeds), UNITS[kind])  # fmt: skip
