"""Did tax-aware training lower the tax? One arm against another, over seeds and shared scenes.

Tax-aware DPO (`vat.anchor`) trades target gain for a smaller shift of the other values. Whether
it did is a comparison of two arms (``D[s, x, v]``, seeds x scenes x values, as in
`vat.metrics.repeats`) measured on the same held-out scenes: anchored (``a``) against plain
(``b``). Per resample the scenes are drawn once for both arms (paired by scene) and each arm's seeds
on their own, as `net_of_placebo` does; on each resample:

- ``off = mean_{v != t} |theta_v|``: the mean absolute shift of the non-target values (the tax in
  score units, not divided by anything, so defined even when the gain is small);
- ``GND = off / |theta_t|``: the tax per unit of gain.

`tax_difference` reports, for both quantities, the arms' values and the difference ``a - b`` with
a bias-corrected percentile interval (``2 x raw - mean over resamples``, the interval re-centred on
it, as a single run's GND) and a two-sided bootstrap p (twice the smaller share of resampled
differences on either side of 0). The gains are compared by the paired bootstrap-t of
`net_of_placebo` (``a`` as "real", ``b`` as "placebo"). A GND difference over an arm whose gain
interval covers 0 is not a number worth reading: `gnd_defined` says so.

`arm_nvat` is the null-corrected nVAT of an arm's seed-averaged shifts, with its scene interval.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from vat.metrics.repeats import _arm_moments, _gnd, _weights, net_of_placebo, paired_draws


def _off(theta: np.ndarray, t: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.delete(np.abs(theta), t, axis=-1), axis=-1)


@dataclass(frozen=True)
class Difference:
    a: float  # the first arm's value
    b: float  # the second arm's
    diff: float  # bias-corrected a - b
    lo: float
    hi: float
    p: float

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _difference(raw_a: float, raw_b: float, boot: np.ndarray, ci: float) -> Difference:
    raw = raw_a - raw_b
    fin = boot[np.isfinite(boot)]
    if not np.isfinite(raw) or len(fin) < 10:
        return Difference(raw_a, raw_b, raw, np.nan, np.nan, np.nan)
    bc = 2 * raw - float(fin.mean())
    lo, hi = np.quantile(fin, [(1 - ci) / 2, (1 + ci) / 2]) + (bc - raw)
    centred = fin - fin.mean() + bc  # the resampled differences around the estimate
    p = min(1.0, 2 * min((1 + np.sum(centred <= 0)) / (len(fin) + 1),
                         (1 + np.sum(centred >= 0)) / (len(fin) + 1)))  # fmt: skip
    return Difference(raw_a, raw_b, float(bc), float(lo), float(hi), float(p))


@dataclass(frozen=True)
class TaxDifference:
    """Arm ``a`` (e.g. anchored) against arm ``b`` (plain) on the same scenes."""

    target: str
    gain: object  # `vat.metrics.repeats.Estimate` of gain_a - gain_b (paired bootstrap-t)
    off: Difference  # mean |shift| of the non-target values
    gnd: Difference
    gnd_defined: bool  # both arms' gain intervals exclude 0

    def to_dict(self) -> dict:
        return {"target": self.target, "gain": self.gain.to_dict(), "off": self.off.to_dict(),
                "gnd": self.gnd.to_dict(), "gnd_defined": self.gnd_defined}  # fmt: skip


def tax_difference(
    D_a, D_b, values, target: str, *, n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> TaxDifference:
    """Arm ``a`` minus arm ``b``: gain, off-target mean |shift| and GND, paired over scenes."""
    A, B, t, w, ua, ub = paired_draws(D_a, D_b, values, target, n_boot, seed)
    one = np.ones((1, A.shape[1]))
    tha = _arm_moments(A, one, np.ones((1, A.shape[0])))[0]
    thb = _arm_moments(B, one, np.ones((1, B.shape[0])))[0]
    tha_b, thb_b = _arm_moments(A, w, ua)[0], _arm_moments(B, w, ub)[0]
    off = _difference(float(_off(tha, t)[0]), float(_off(thb, t)[0]),
                      _off(tha_b, t) - _off(thb_b, t), ci)  # fmt: skip
    gnd = _difference(float(_gnd(tha, t)[0]), float(_gnd(thb, t)[0]),
                      _gnd(tha_b, t) - _gnd(thb_b, t), ci)  # fmt: skip
    net = net_of_placebo(A, B, values, target, n_boot=n_boot, ci=ci, seed=seed)
    defined = all(s.gain.lo > 0 or s.gain.hi < 0 for s in (net.real, net.placebo))
    return TaxDifference(target, net.gain, off, gnd, bool(defined))


def arm_nvat(
    D, values, *, n_boot: int = 2000, n_permutations: int = 1000, ci: float = 0.95,
    min_overlap: int = 8, seed: int = 0, w: np.ndarray | None = None,
) -> dict:  # fmt: skip
    """Null-corrected nVAT of the seed-averaged shifts ``mean_s D[s]`` (scenes x values).

    ``value = sqrt(max(0, nvat^2 - E_null[nvat^2]))`` against its column-permutation null
    (`vat.metrics.nulls.debias_nvat`); the interval resamples the scenes (weights `w`, drawn here
    when None), shifting nvat^2 by its resampled spread as a single run's interval does. Also
    ``raw`` (the nVAT itself) and ``boot`` (the resampled debiased values, for averaging)."""
    from vat.metrics.coupling import _coupling_weighted, _nvat_offdiag_batch, coupling
    from vat.metrics.nulls import coupling_null, debias_nvat

    D = np.asarray(D, dtype=float)
    if w is None:
        w = _weights(np.random.default_rng(seed), D.shape[1], n_boot)
    Dm = np.nanmean(D, axis=0)
    R = coupling(Dm, method="spearman", min_overlap=min_overlap)
    nv = float(_nvat_offdiag_batch(R))
    null = coupling_null(Dm, R, method="spearman", min_overlap=min_overlap,
                         n_permutations=n_permutations, seed=seed)  # fmt: skip
    res = _nvat_offdiag_batch(_coupling_weighted(Dm, w, "spearman", min_overlap)) ** 2
    boot = np.sqrt(np.maximum(0.0, nv * nv - null.nvat_offdiag_null_sq + res - np.nanmean(res)))
    lo, hi = np.nanquantile(boot, [(1 - ci) / 2, (1 + ci) / 2])
    return {"value": float(debias_nvat(nv, null.nvat_offdiag_null_sq)), "lo": float(lo),
            "hi": float(hi), "raw": nv, "boot": boot}  # fmt: skip
