"""The paper's aggregate: the mean tax over the aligned targets of one model x method x probe.

Each target is an arm (``D[s, x, v]``, as in `vat.metrics.repeats`) measured on the same held-out
scenes; every resample draws the scenes once for all targets and each arm's seeds on their own.
The mean GND is bias-corrected; the mean nVAT is the mean of each target's debiased nVAT
(`vat.metrics.frontier.arm_nvat`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vat.metrics.frontier import arm_nvat
from vat.metrics.repeats import _arm_moments, _check, _gnd, _weights


@dataclass(frozen=True)
class OverTargets:
    """Mean tax over the aligned targets of one model x method x probe (the paper's aggregate)."""

    targets: tuple[str, ...]
    gnd: dict[str, float]  # mean over targets: raw, bc (bias-corrected), lo, hi
    nvat: dict[str, float]  # mean debiased nVAT over targets: value, lo, hi, raw (mean raw)
    per_target_gnd: dict[str, float]
    per_target_nvat: dict[str, float]

    def to_dict(self) -> dict:
        return {"targets": list(self.targets), "gnd": dict(self.gnd), "nvat": dict(self.nvat),
                "per_target_gnd": dict(self.per_target_gnd),
                "per_target_nvat": dict(self.per_target_nvat)}  # fmt: skip


def aggregate_over_targets(
    arms: list[tuple[str, np.ndarray]], values, *, n_boot: int = 2000, n_permutations: int = 1000,
    ci: float = 0.95, min_overlap: int = 8, seed: int = 0,
) -> OverTargets:  # fmt: skip
    """Mean GND (bias-corrected) and mean debiased nVAT over targets, with joint-scene intervals.

    `arms` are ``(target, D)`` with D (seeds, scenes, values) on the **same scenes** (one held-out
    split). Every resample draws the scenes once for all targets (their estimates share those
    scenes, so they are not independent) and each arm's seeds on their own (two-level, as
    `summarize_arm`); the mean GND's interval is the percentile interval re-centred on its
    bias-corrected value. nVAT is computed per target on the seed-averaged shifts and debiased by
    its own column-permutation null, ``sqrt(max(0, nvat^2 - E_null[nvat^2]))``; its interval
    resamples the scenes only, shifting each target's nvat^2 by its resampled spread as a single
    run's interval does (`vat.metrics.nulls.nvat_interval`).
    """
    if len(arms) < 2:
        raise ValueError(f"an aggregate over targets needs at least 2 targets, got {len(arms)}")
    values = list(values)
    n_x = {np.asarray(D).shape[1] for _, D in arms}
    if len(n_x) != 1:
        raise ValueError(f"the targets' shift arrays cover different scene counts {sorted(n_x)}")
    n_x = n_x.pop()
    rng = np.random.default_rng(seed)
    w = _weights(rng, n_x, n_boot)
    g_hat, g_b, nv_hat, nv_b, raw_nv = [], [], [], [], []
    for target, D in arms:
        D, t = _check(D, values, target, f"arm {target}")
        u = _weights(rng, D.shape[0], n_boot)
        th, *_ = _arm_moments(D, np.ones((1, n_x)), np.ones((1, D.shape[0])))
        thb, *_ = _arm_moments(D, w, u)
        g_hat.append(float(_gnd(th[0][None], t)[0]))
        g_b.append(_gnd(thb, t))
        nv = arm_nvat(D, values, n_permutations=n_permutations, ci=ci, min_overlap=min_overlap,
                      seed=seed, w=w)  # fmt: skip
        raw_nv.append(nv["raw"])
        nv_hat.append(nv["value"])
        nv_b.append(nv["boot"])
    targets = tuple(t for t, _ in arms)
    g_b = np.nanmean(np.stack(g_b), axis=0) if np.isfinite(g_hat).all() else np.full(n_boot, np.nan)
    raw = float(np.mean(g_hat))
    alpha = 1 - ci
    fin = g_b[np.isfinite(g_b)]
    if np.isfinite(raw) and len(fin) >= 10:
        bc = max(0.0, 2 * raw - float(fin.mean()))
        lo, hi = np.quantile(fin, [alpha / 2, 1 - alpha / 2]) + (bc - raw)
        gnd = {"raw": raw, "bc": bc, "lo": max(0.0, float(lo)), "hi": float(hi)}
    else:
        gnd = {"raw": raw, "bc": np.nan, "lo": np.nan, "hi": np.nan}
    nvb = np.nanmean(np.stack(nv_b), axis=0)
    lo, hi = np.nanquantile(nvb, [alpha / 2, 1 - alpha / 2])
    nvat = {"value": float(np.mean(nv_hat)), "lo": float(lo), "hi": float(hi),
            "raw": float(np.mean(raw_nv))}  # fmt: skip
    return OverTargets(targets, gnd, nvat, dict(zip(targets, g_hat, strict=True)),
                       dict(zip(targets, map(float, nv_hat), strict=True)))  # fmt: skip
