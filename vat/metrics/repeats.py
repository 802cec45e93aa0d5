"""Repeats and controls: VAT over several seeds, and a tax net of its placebo.

One run measures an intervention once, and its intervals cover only the scene sampling: another
training seed (data order, LoRA init, shot draw) moves the result too. Here an **arm** is one
intervention run under several seeds and measured on the same held-out scenes: an array
``D[s, x, v]`` of shifts (seed, scene, value), NaN where a cell is missing.

The arm's estimate of value v's shift is the mean over seeds of the per-seed mean over scenes. Its
uncertainty has two sources, and a **two-level bootstrap** draws both: each resample draws seeds
with replacement and then scenes with replacement (the scenes once per resample, shared by every
seed and by both arms of a comparison, because every run was measured on the same scenes). The
intervals and p-values are bootstrap-t, studentised by

    SE^2 = Var_x(mean_s D[s, x, v]) / n_x  +  Var_s(mean_x D[s, x, v]) / n_s

(the scene component plus the seed component; the seed x scene residual enters both, which errs
on the wide side). With one seed the seed term vanishes and this is the scene bootstrap-t of a
single run. With few seeds the seed component is estimated from few numbers: 3 seeds tell a
seed variance only roughly, and the report says how many there were.

`net_of_placebo` compares two arms, the real intervention and its placebo (`vat.data.placebo`),
value by value: ``net_v = shift_real_v - shift_placebo_v``, paired over scenes, with Holm's
correction across the non-target values; the net GND is the GND of the net shifts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from vat.metrics.resampling import holm

# ------------------------------------------------------------------------------------ weights


def _weights(rng: np.random.Generator, n: int, n_boot: int) -> np.ndarray:
    """(B, n) multinomial counts: how often each unit is drawn in each resample."""
    idx = rng.integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    return w


def _arm_moments(D: np.ndarray, w: np.ndarray, u: np.ndarray):
    """Per resample (rows of the scene weights `w` (B, X) and seed weights `u` (B, S)):

    - ``theta`` (B, V): the seed-weighted mean of per-seed scene-weighted means;
    - ``per_seed`` (B, S, V): the per-seed means (scene-weighted);
    - ``per_scene`` (B, X, V): the per-scene means over the (weighted) seeds;
    - ``var_seed`` (B, V): the weighted variance of the per-seed means (0 with one seed).
    """
    M = np.isfinite(D)
    D0 = np.where(M, D, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_seed = np.einsum("bx,sxv->bsv", w, D0) / np.einsum("bx,sxv->bsv", w, M)
        ok = np.isfinite(per_seed)
        uu = u[:, :, None] * ok
        n_s = uu.sum(1)
        theta = np.einsum("bsv,bsv->bv", uu, np.where(ok, per_seed, 0.0)) / n_s
        per_scene = np.einsum("bs,sxv->bxv", u, D0) / np.einsum("bs,sxv->bxv", u, M)
        dev = np.where(ok, per_seed - theta[:, None, :], 0.0)
        var_seed = np.where(n_s > 1, (uu * dev**2).sum(1) / (n_s - 1), 0.0)
    return theta, per_seed, per_scene, var_seed, n_s


def _scene_var(per_scene: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(variance over scenes, number of scenes) of per-scene means, scene weights `w` (B, X)."""
    ok = np.isfinite(per_scene)
    ww = w[:, :, None] * ok
    n = ww.sum(1)
    x = np.where(ok, per_scene, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (ww * x).sum(1) / n
        var = (ww * (x - mean[:, None, :]) ** 2).sum(1) / (n - 1)
    return var, n


# ------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Estimate:
    """A number with its bootstrap-t interval and two-sided p (H0: it is 0)."""

    value: float
    lo: float
    hi: float
    p: float
    se: float

    def to_dict(self) -> dict:
        return {"value": self.value, "lo": self.lo, "hi": self.hi, "p": self.p, "se": self.se}


def _studentised(theta_hat, se_hat, theta_b, se_b, ci: float):
    """Bootstrap-t interval and p per column: t* = (theta* - theta_hat) / se*; the p-value is
    the equal-tailed one, so that it and the interval never disagree about 0."""
    alpha = 1 - ci
    with np.errstate(invalid="ignore", divide="ignore"):
        t_b = (theta_b - theta_hat) / se_b
        t_obs = theta_hat / se_hat
    out = []
    for j in range(theta_hat.shape[0]):
        tb = t_b[:, j][np.isfinite(t_b[:, j])]
        if not np.isfinite(theta_hat[j]) or len(tb) < 10 or not np.isfinite(se_hat[j]):
            out.append(Estimate(float(theta_hat[j]), np.nan, np.nan, np.nan, float(se_hat[j])))
            continue
        if se_hat[j] == 0:
            out.append(Estimate(float(theta_hat[j]), float(theta_hat[j]), float(theta_hat[j]),
                                1.0 if theta_hat[j] == 0 else 0.0, 0.0))  # fmt: skip
            continue
        q_lo, q_hi = np.quantile(tb, [alpha / 2, 1 - alpha / 2])
        # equal-tailed, as the interval: p < 1 - ci exactly when the interval excludes 0
        upper = (1 + np.sum(tb >= t_obs[j])) / (len(tb) + 1)
        lower = (1 + np.sum(tb <= t_obs[j])) / (len(tb) + 1)
        p = min(1.0, 2 * min(upper, lower))
        out.append(Estimate(float(theta_hat[j]), float(theta_hat[j] - q_hi * se_hat[j]),
                            float(theta_hat[j] - q_lo * se_hat[j]), float(p), float(se_hat[j])))  # fmt: skip
    return out


def _gnd(theta: np.ndarray, t: int) -> np.ndarray:
    """GND (L1) = mean_{v != t} |theta_v| / |theta_t| per row of `theta` (B, V), as
    `vat.metrics.gnd` defines it for one run (values without data left out)."""
    off = np.delete(np.abs(theta), t, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(off, axis=-1) / np.abs(theta[..., t])


def _gnd_estimate(
    theta_hat: np.ndarray, theta_b: np.ndarray, t: int, ci: float, gain: Estimate
) -> dict:
    """Raw GND, its bias-corrected value (2 x raw - mean over resamples) and the percentile
    interval re-centred on it (as `compute_vat` reports a single run's). When the gain's interval
    covers 0 the ratio is unbounded above: the upper end is +inf."""
    raw = float(_gnd(theta_hat[None], t)[0])
    g = _gnd(theta_b, t)
    g = g[np.isfinite(g)]
    if not np.isfinite(raw) or len(g) < 10:
        return {"raw": raw, "bc": np.nan, "lo": np.nan, "hi": np.nan}
    bc = max(0.0, 2 * raw - float(g.mean()))
    lo, hi = np.quantile(g, [(1 - ci) / 2, (1 + ci) / 2]) + (bc - raw)
    if not (gain.lo > 0 or gain.hi < 0):  # NaN ends count as covering
        hi = np.inf
    return {"raw": raw, "bc": bc, "lo": max(0.0, float(lo)), "hi": float(hi)}


@dataclass(frozen=True)
class ArmSummary:
    """One intervention over its seeds: per-value shift, gain, GND, and the spread between seeds."""

    values: tuple[str, ...]
    target: str
    n_seeds: int
    n_scenes: int
    shift: dict[str, Estimate]
    gnd: dict[str, float]  # raw, bc, lo, hi
    per_seed_gain: tuple[float, ...]
    per_seed_gnd: tuple[float, ...]

    @property
    def gain(self) -> Estimate:
        return self.shift[self.target]

    @property
    def sd_gain(self) -> float:
        """Between-seed standard deviation of the gain (NaN with one seed)."""
        return float(np.std(self.per_seed_gain, ddof=1)) if self.n_seeds > 1 else np.nan

    @property
    def sd_gnd(self) -> float:
        g = np.asarray(self.per_seed_gnd, float)
        g = g[np.isfinite(g)]
        return float(np.std(g, ddof=1)) if len(g) > 1 else np.nan

    def to_dict(self) -> dict:
        return {
            "target": self.target, "n_seeds": self.n_seeds, "n_scenes": self.n_scenes,
            "shift": {v: e.to_dict() for v, e in self.shift.items()}, "gnd": dict(self.gnd),
            "per_seed_gain": list(self.per_seed_gain), "per_seed_gnd": list(self.per_seed_gnd),
            "sd_gain": self.sd_gain, "sd_gnd": self.sd_gnd,
        }  # fmt: skip


@dataclass(frozen=True)
class NetOfPlacebo:
    """The real arm minus its placebo, per value, paired over scenes."""

    values: tuple[str, ...]
    target: str
    real: ArmSummary
    placebo: ArmSummary
    net: dict[str, Estimate]
    p_holm: dict[str, float] = field(default_factory=dict)  # non-target values, Holm-adjusted
    gnd: dict[str, float] = field(default_factory=dict)  # GND of the net shifts

    @property
    def gain(self) -> Estimate:
        return self.net[self.target]

    def to_dict(self) -> dict:
        return {
            "target": self.target, "real": self.real.to_dict(), "placebo": self.placebo.to_dict(),
            "net": {v: e.to_dict() for v, e in self.net.items()}, "p_holm": dict(self.p_holm),
            "gnd": dict(self.gnd),
        }  # fmt: skip


# ------------------------------------------------------------------------------------ entry points


def _check(D: np.ndarray, values, target: str, name: str) -> tuple[np.ndarray, int]:
    D = np.asarray(D, dtype=float)
    if D.ndim != 3:
        raise ValueError(f"{name}: expected (seeds, scenes, values) shifts, got shape {D.shape}")
    if D.shape[2] != len(values):
        raise ValueError(f"{name}: {D.shape[2]} value columns but {len(values)} value names")
    if target not in values:
        raise ValueError(f"{name}: target {target!r} is not among the values {list(values)}")
    return D, list(values).index(target)


def summarize_arm(
    D, values, target: str, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> ArmSummary:
    """Per-value shift (bootstrap-t over seeds and scenes), GND and between-seed spread of an arm."""
    D, t = _check(D, values, target, "arm")
    n_s, n_x, _ = D.shape
    rng = np.random.default_rng(seed)
    w, u = _weights(rng, n_x, n_boot), _weights(rng, n_s, n_boot)
    one_x, one_s = np.ones((1, n_x)), np.ones((1, n_s))
    th, per_seed, per_scene, vs, ns = _arm_moments(D, one_x, one_s)
    vx, nx = _scene_var(per_scene, one_x)
    se = np.sqrt(vx / nx + vs / ns)[0]
    thb, _, per_scene_b, vsb, nsb = _arm_moments(D, w, u)
    vxb, nxb = _scene_var(per_scene_b, w)
    seb = np.sqrt(vxb / nxb + vsb / nsb)
    est = _studentised(th[0], se, thb, seb, ci)
    return ArmSummary(
        tuple(values), target, n_s, n_x, dict(zip(values, est, strict=True)),
        _gnd_estimate(th[0], thb, t, ci, est[t]),
        tuple(float(x) for x in per_seed[0, :, t]),
        tuple(float(x) for x in _gnd(per_seed[0], t)),
    )  # fmt: skip


def paired_draws(D_a, D_b, values, target: str, n_boot: int, seed: int,
                 names: tuple[str, str] = ("arm a", "arm b")):  # fmt: skip
    """Two arms on the same scenes, checked, with the resampling weights of a paired comparison:
    ``(A, B, t, w, ua, ub)``: scene weights `w` shared by both arms, seed weights per arm."""
    A, t = _check(D_a, values, target, names[0])
    B, _ = _check(D_b, values, target, names[1])
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"{names[0]} has {A.shape[1]} scenes and {names[1]} {B.shape[1]}: "
                         "both must be measured on the same held-out scenes")  # fmt: skip
    rng = np.random.default_rng(seed)
    w = _weights(rng, A.shape[1], n_boot)
    return A, B, t, w, _weights(rng, A.shape[0], n_boot), _weights(rng, B.shape[0], n_boot)


def net_of_placebo(
    D_real, D_placebo, values, target: str, *, n_boot: int = 2000, ci: float = 0.95,
    seed: int = 0,
) -> NetOfPlacebo:  # fmt: skip
    """The real arm's shifts net of its placebo's, per value, with two-level bootstrap-t intervals.

    Both arrays are (seeds, scenes, values) over the **same scenes in the same order** (the same
    held-out split); the seeds of the two arms are independent. Scenes are resampled once per
    resample for both arms (the comparison is paired by scene), seeds per arm.
    """
    A, B, t, w, ua, ub = paired_draws(D_real, D_placebo, values, target, n_boot, seed,
                                      names=("the real arm", "the placebo"))  # fmt: skip
    n_x = A.shape[1]

    def moments(wx, wa, wb):
        tha, _, psa, vsa, nsa = _arm_moments(A, wx, wa)
        thb, _, psb, vsb, nsb = _arm_moments(B, wx, wb)
        vx, nx = _scene_var(psa - psb, wx)
        return tha - thb, np.sqrt(vx / nx + vsa / nsa + vsb / nsb)

    th, se = moments(np.ones((1, n_x)), np.ones((1, A.shape[0])), np.ones((1, B.shape[0])))
    thb, seb = moments(w, ua, ub)
    est = dict(zip(values, _studentised(th[0], se[0], thb, seb, ci), strict=True))
    others = [v for v in values if v != target]
    adj = holm(np.array([est[v].p for v in others]))
    return NetOfPlacebo(
        tuple(values), target,
        summarize_arm(A, values, target, n_boot=n_boot, ci=ci, seed=seed),
        summarize_arm(B, values, target, n_boot=n_boot, ci=ci, seed=seed + 1),
        est, dict(zip(others, map(float, adj), strict=True)),
        _gnd_estimate(th[0], thb, t, ci, est[target]),
    )  # fmt: skip


def stack_runs(
    runs: list[tuple[list[str], list[str], np.ndarray]],
) -> tuple[np.ndarray, list[str], list[str]]:
    """(seeds, scenes, values) from per-run ``(scenes, values, D)``, aligned on the scenes and
    values the runs share (a scene missing from a run is NaN there)."""
    if not runs:
        raise ValueError("no runs to stack")
    values = list(runs[0][1])
    scenes = sorted(set().union(*(set(r[0]) for r in runs)))
    out = np.full((len(runs), len(scenes), len(values)), np.nan)
    for i, (sc, vals, D) in enumerate(runs):
        if list(vals) != values:
            raise ValueError(f"run {i}: values {list(vals)} differ from run 0's {values}")
        pos = [scenes.index(s) for s in sc]
        out[i, pos, :] = np.asarray(D, float)
    return out, scenes, values
