"""`compute_vat`: every VAT quantity for one comparison, bundled in a serialisable `VATResult`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from vat.metrics._common import (
    _NAN,
    DEFAULT_MIN_OVERLAP,
    BootstrapScheme,
    CouplingMethod,
    EpsUnits,
    _as_matrix,
    _check_eps,
    _taxonomy_names,
)
from vat.metrics.coupling import (
    circumplex_consistency,
    coupling,
    hubs,
    nvat_offdiag,
    nvat_paper,
    overlap,
)
from vat.metrics.first_order import gnd, mean_shift, shift, tax
from vat.metrics.inference import first_order_inference
from vat.metrics.nulls import (
    correlation_p_values,
    coupling_null,
    debias_nvat,
    fisher_z_interval,
    hub_rank_frequency,
    mantel_circumplex,
    nvat_interval,
)
from vat.metrics.resampling import (
    check_resampling,
    holm,
    resample_stats,
    resample_weights,
    rescaled,
)
from vat.values import BASIC_VALUES, normalize_micro_value, normalize_value

#: `compute_vat`'s default eps: 1 % of the pre state's scene standard deviation.
DEFAULT_EPS_SD = 0.01


def to_jsonable(x: Any) -> Any:
    """Python builtins only: NaN as None (strict JSON has neither NaN nor inf), +-inf as "inf"/"-inf".

    Infinity is meaningful here (an unbounded ratio interval), so it survives as a string that
    `VATResult.from_dict` reads back.
    """
    if isinstance(x, bool | np.bool_):
        return bool(x)
    if isinstance(x, int | np.integer):
        return int(x)
    if isinstance(x, float | np.floating):
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return float(x) if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | np.ndarray):
        return [to_jsonable(v) for v in x]
    return x


def _f(x: Any) -> float:
    return _NAN if x is None else float(x)  # float("inf") / float("-inf") read the strings back


def _pair(x: Any) -> tuple[float, float]:
    lo, hi = x
    return (_f(lo), _f(hi))


def eps_threshold(S_pre: Any, eps: float, units: str) -> tuple[float, str]:
    """The |G| threshold in score units, and the units it was finally taken in.

    ``units="pre_sd"``: ``eps`` times the pre state's scene standard deviation (the RMS over values
    of each column's SD across scenes, ddof=1), so one setting means the same for probes whose
    score units differ by an order of magnitude (likelihood margins in nats, centred Likert
    ratings). When that SD is undefined or zero (one scene, a constant state) eps is taken in
    score units and ``"score"`` is returned. ``units="score"``: eps as given.
    """
    eps = _check_eps(eps)
    if units == "score":
        return eps, "score"
    if units != "pre_sd":
        raise ValueError(f"unknown eps_units {units!r}; expected 'pre_sd' or 'score'")
    S = _as_matrix(S_pre, "S_pre")
    fin = np.isfinite(S)
    var = []
    for v in range(S.shape[1]):
        col = S[fin[:, v], v]
        if col.size >= 2:
            var.append(np.var(col, ddof=1))
    sd = float(np.sqrt(np.mean(var))) if var else _NAN
    if not (np.isfinite(sd) and sd > 0):
        return eps, "score"
    return eps * sd, "pre_sd"


@dataclass(frozen=True)
class VATResult:
    """Every Value Alignment Tax quantity for one (pre, post, target) comparison.

    Dicts are keyed by value name; ``tau``, ``p_values`` and ``p_holm`` cover the non-target values
    only. ``intervals`` maps ``"gain"``, ``"gnd_l1"``, ``"nvat_offdiag"`` (the debiased nVAT's),
    ``"tau.<v>"`` (Fieller; ``(-inf, inf)`` when the gain's interval covers 0), ``"shift.<v>"``
    and ``"d_z.<v>"`` to ``(lo, hi)``. Matrices (``R``, ``R_*``) follow ``values``. Second-order
    numbers come with their permutation null: ``*_null`` (its mean), ``*_excess`` (observed in
    excess of it; for nVAT ``sqrt(max(0, nvat^2 - E_null[nvat^2]))``) and a p-value. Undefined
    numbers are NaN in Python and null in `to_dict` / `to_json`; infinite limits are "inf".
    """

    target: str
    values: tuple[str, ...]
    level: str  # "basic" or "micro"
    n_scenes: int
    eps: float  # as configured, in eps_units
    eps_units: str  # "pre_sd" or "score"
    eps_abs: float  # the |G| threshold applied, score units
    min_overlap: int
    gain: float
    gain_se: float
    gain_too_small: bool
    gain_bounded: bool  # the gain's interval excludes 0, so ratio intervals are finite
    gain_undefined_share: float  # resamples with |G*| < eps
    gain_sign_flip_share: float  # resamples whose G* has the other sign
    mean_shift: dict[str, float]
    shift_se: dict[str, float]
    d_z: dict[str, float]
    tau: dict[str, float]
    gnd_l1: float
    gnd_l1_null: float  # noise floor: mean GND when no non-target value drifts
    gnd_l1_bc: float  # bias-corrected
    gnd_l2: float
    collateral: float
    n_values_gnd: int  # non-target values that entered GND
    p_drift: float  # no non-target value moved (smallest Holm-adjusted p)
    tau_spread: float  # sd over values of tau_v
    tau_spread_null: float  # its mean if every value moved by the same amount
    p_uneven: float  # test of equal shifts of the non-target values
    coupling_method: str
    R: tuple[tuple[float, ...], ...]
    R_null_mean: tuple[tuple[float, ...], ...]
    R_p: tuple[tuple[float, ...], ...]  # p of R[u, v] = 0 (t approximation, as scipy.stats)
    R_p_holm: tuple[tuple[float, ...], ...]  # Holm over the off-diagonal pairs
    R_lo: tuple[tuple[float, ...], ...]  # Fisher-z interval
    R_hi: tuple[tuple[float, ...], ...]
    n_pairs_nvat: int  # off-diagonal pairs (u < v) that entered nVAT
    nvat_offdiag: float
    nvat_offdiag_null: float
    nvat_offdiag_excess: float  # debiased: the headline nVAT
    p_nvat: float
    nvat_paper: float
    nvat_paper_null: float
    nvat_paper_excess: float
    p_nvat_paper: float
    hubs: tuple[str, ...]
    hub_k: int
    hub_strength: dict[str, float]
    hub_null: dict[str, float]
    hub_excess: dict[str, float]
    hub_p: dict[str, float]
    hub_top_freq: dict[str, float]  # share of bootstrap resamples where the value is a top-k hub
    circumplex_consistency: float
    circumplex_null: float
    circumplex_excess: float
    p_circumplex: float  # Mantel test (value labels permuted)
    intervals: dict[str, tuple[float, float]]
    ci: float
    bootstrap_scheme: str
    n_bootstrap: int
    test_method: str
    p_values: dict[str, float]
    p_holm: dict[str, float]
    p_gain: float
    n_permutations: int
    seed: int | None

    def to_dict(self) -> dict[str, Any]:
        """Plain builtins (lists, dicts, floats, None for NaN) ready for strict JSON."""
        return {f.name: to_jsonable(getattr(self, f.name)) for f in fields(self)}

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON (``allow_nan=False``): NaN is written as ``null``."""
        return json.dumps(self.to_dict(), allow_nan=False, **kwargs)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VATResult:
        """Inverse of `to_dict` (null back to NaN, "inf" back to inf, lists back to tuples).

        Fields a file written by an older version lacks come back NaN (numbers), empty (dicts,
        matrices) or 0 (counts), so old `vat.json` files stay readable.
        """
        out: dict[str, Any] = {}
        for f in fields(cls):
            kind = str(f.type)
            if f.name not in d:
                if f.default is not MISSING:
                    out[f.name] = f.default
                    continue
                missing = {"float": _NAN, "int": 0, "bool": False, "str": ""}
                if kind in missing:
                    out[f.name] = missing[kind]
                elif kind.startswith("dict"):
                    out[f.name] = {}
                elif kind.startswith("tuple"):
                    out[f.name] = ()
                else:
                    out[f.name] = None
                continue
            x = d[f.name]
            if kind == "float":
                out[f.name] = _f(x)
            elif kind == "int":
                out[f.name] = int(x)
            elif kind == "bool":
                out[f.name] = bool(x)
            elif kind == "str":
                out[f.name] = str(x)
            elif kind == "int | None":
                out[f.name] = None if x is None else int(x)
            elif kind == "dict[str, float]":
                out[f.name] = {str(k): _f(v) for k, v in x.items()}
            elif kind.startswith("dict[str, tuple"):
                out[f.name] = {str(k): _pair(v) for k, v in x.items()}
            elif kind == "tuple[str, ...]":
                out[f.name] = tuple(str(v) for v in x)
            else:  # matrices
                out[f.name] = tuple(tuple(_f(v) for v in row) for row in x)
        return cls(**out)

    @classmethod
    def from_json(cls, s: str) -> VATResult:
        return cls.from_dict(json.loads(s))


def _matrix(M: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in M)


def _seeds(seed: int | None) -> tuple[np.random.Generator, ...]:
    """Independent streams for the bootstrap, the column permutations and the Mantel test."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def compute_vat(
    S_pre: Any,
    S_post: Any,
    target: str,
    values: Sequence[str] = BASIC_VALUES,
    *,
    eps: float = DEFAULT_EPS_SD,
    eps_units: EpsUnits = "pre_sd",
    coupling_method: CouplingMethod = "spearman",
    min_overlap: int = DEFAULT_MIN_OVERLAP,
    n_bootstrap: int = 1000,
    n_permutations: int = 1000,
    seed: int | None = 0,
    hub_k: int = 3,
    bootstrap_scheme: BootstrapScheme = "bootstrap",
    subsample_frac: float = 0.8,
    ci: float = 0.95,
) -> VATResult:
    """All VAT metrics for an intervention aimed at `target`, from paired pre/post states.

    ``values`` names the columns: all basic values (any spelling, default `BASIC_VALUES`) or all
    micro-values (micro level; then `target` is a micro-value). ``eps`` is the smallest |gain| for
    which ratios are reported, in ``eps_units`` (see `eps_threshold`). ``n_bootstrap`` scene
    resamples give the first-order tests and intervals (`vat.metrics.inference`), the GND and nVAT
    intervals and the hub frequencies; ``n_permutations`` column permutations give the coupling
    nulls and as many label permutations the Mantel test (`vat.metrics.nulls`). 0 skips them
    (reported as NaN). ``bootstrap_scheme="subsample"`` takes the GND/nVAT intervals and hub
    frequencies from rescaled 80 % subsamples instead; the tests always use the bootstrap-t.
    """
    names, level = _taxonomy_names(values)
    D = shift(S_pre, S_post)
    n, V = D.shape
    if len(names) != V:
        raise ValueError(f"states have {V} columns but {len(names)} values were named")
    tname = (normalize_value if level == "basic" else normalize_micro_value)(target)
    if tname not in names:
        raise ValueError(f"target {tname!r} is not among the values {list(names)}")
    check_resampling(bootstrap_scheme, subsample_frac, ci, n_bootstrap)
    if n_permutations < 0:
        raise ValueError(f"n_permutations must be >= 0, got {n_permutations}")
    t = names.index(tname)
    eps_abs, units = eps_threshold(S_pre, eps, eps_units)
    others = [i for i in range(V) if i != t]
    rng_boot, rng_perm, rng_mantel = _seeds(seed)
    nan2 = (_NAN, _NAN)

    m = mean_shift(D)
    drift = gnd(D, t, eps_abs)
    taus = tax(D, t, eps_abs)
    R = coupling(D, coupling_method, min_overlap)
    hub = hubs(R, names, hub_k)
    cc = circumplex_consistency(R, names)
    nv_off, nv_pap = nvat_offdiag(R), nvat_paper(R)
    iu = np.triu_indices(V, 1)
    n_pairs = int(np.count_nonzero(np.isfinite(R[iu])))

    B = int(n_bootstrap) if n > 0 else 0
    W, _ = resample_weights(n, B, rng_boot)
    if bootstrap_scheme == "bootstrap":
        W_ci, scale = W, 1.0
    else:
        W_ci, scale = resample_weights(n, B, rng_boot, "subsample", subsample_frac)
    rs = resample_stats(
        D, t, W_ci, eps=eps_abs, coupling_method=coupling_method, min_overlap=min_overlap,
        keep_R=True,
    )  # fmt: skip
    l1_res = rescaled(rs.l1s, drift.l1, scale)
    nv_res = rescaled(rs.nvats, nv_off, scale)
    fo = first_order_inference(
        D,
        t,
        W,
        ci=ci,
        eps=eps_abs,
        gnd_resamples=l1_res if bootstrap_scheme != "bootstrap" else None,
    )
    null = coupling_null(
        D, R, method=coupling_method, min_overlap=min_overlap,
        n_permutations=n_permutations, seed=rng_perm,
    )  # fmt: skip
    mantel = mantel_circumplex(R, names, n_permutations=n_permutations, seed=rng_mantel)
    nv_excess = debias_nvat(nv_off, null.nvat_offdiag_null_sq)
    fin_diag = int(np.count_nonzero(np.isfinite(np.diag(R))))
    n_off = 2 * n_pairs
    nvp_excess = (
        float(np.sqrt((fin_diag + n_off * nv_excess**2) / V)) if np.isfinite(nv_excess) else _NAN
    )
    R_lo, R_hi = fisher_z_interval(R, overlap(D), coupling_method, ci)
    R_p = correlation_p_values(R, overlap(D), coupling_method)
    R_p_holm = np.full((V, V), np.nan)
    ph = holm(R_p[iu])
    R_p_holm[iu] = ph
    R_p_holm[iu[1], iu[0]] = ph
    top_freq = hub_rank_frequency(rs.R, hub_k) if B else np.full(V, np.nan)

    p_tau = np.array([fo.p[i] for i in others])
    p_holm_tau = holm(p_tau)
    intervals: dict[str, tuple[float, float]] = {
        "gain": tuple(fo.mean_ci[t]) if B else nan2,
        "gnd_l1": fo.gnd_ci if B else nan2,
        "nvat_offdiag": (
            nvat_interval(nv_off, null.nvat_offdiag_null_sq, nv_res, null.p_nvat_offdiag, ci)
            if B
            else nan2
        ),
    }
    for i in others:
        intervals[f"tau.{names[i]}"] = (
            tuple(fo.tau_ci[i]) if B and not drift.gain_too_small else nan2
        )
    for i in range(V):
        intervals[f"shift.{names[i]}"] = tuple(fo.mean_ci[i]) if B else nan2
        intervals[f"d_z.{names[i]}"] = tuple(fo.d_z_ci[i])
    intervals = {k: (float(a), float(b)) for k, (a, b) in intervals.items()}
    per = lambda x: {nm: float(v) for nm, v in zip(names, x, strict=True)}  # noqa: E731
    hub_excess = np.asarray(list(hub.strength.values())) - null.hub_null
    boot_or_nan = (lambda x: x) if B else (lambda x: _NAN)
    return VATResult(
        target=tname,
        values=names,
        level=level,
        n_scenes=int(n),
        eps=float(eps),
        eps_units=units,
        eps_abs=float(eps_abs),
        min_overlap=int(min_overlap),
        gain=drift.gain,
        gain_se=float(fo.se[t]),
        gain_too_small=drift.gain_too_small,
        gain_bounded=bool(B and fo.gain_bounded),
        gain_undefined_share=boot_or_nan(fo.gain_undefined_share),
        gain_sign_flip_share=boot_or_nan(fo.gain_sign_flip_share),
        mean_shift=per(m),
        shift_se=per(fo.se),
        d_z=per(fo.d_z),
        tau={names[i]: float(taus[i]) for i in others},
        gnd_l1=drift.l1,
        gnd_l1_null=boot_or_nan(fo.gnd_null),
        gnd_l1_bc=boot_or_nan(fo.gnd_bc),
        gnd_l2=drift.l2,
        collateral=drift.collateral,
        n_values_gnd=int(np.count_nonzero(np.isfinite(np.delete(m, t)))),
        p_drift=boot_or_nan(fo.p_drift),
        tau_spread=fo.tau_spread if not drift.gain_too_small else _NAN,
        tau_spread_null=boot_or_nan(fo.tau_spread_null),
        p_uneven=boot_or_nan(fo.p_uneven),
        coupling_method=coupling_method,
        R=_matrix(R),
        R_null_mean=_matrix(null.R_null_mean),
        R_p=_matrix(R_p),
        R_p_holm=_matrix(R_p_holm),
        R_lo=_matrix(R_lo),
        R_hi=_matrix(R_hi),
        n_pairs_nvat=n_pairs,
        nvat_offdiag=nv_off,
        nvat_offdiag_null=null.nvat_offdiag_null,
        nvat_offdiag_excess=nv_excess,
        p_nvat=null.p_nvat_offdiag,
        nvat_paper=nv_pap,
        nvat_paper_null=null.nvat_paper_null,
        nvat_paper_excess=nvp_excess,
        p_nvat_paper=null.p_nvat_paper,
        hubs=hub.top,
        hub_k=int(hub_k),
        hub_strength=hub.strength,
        hub_null=per(null.hub_null),
        hub_excess=per(hub_excess),
        hub_p=per(null.hub_p),
        hub_top_freq=per(top_freq),
        circumplex_consistency=cc,
        circumplex_null=mantel.null_mean,
        circumplex_excess=cc - mantel.null_mean if np.isfinite(mantel.null_mean) else _NAN,
        p_circumplex=mantel.p_value,
        intervals=intervals,
        ci=float(ci),
        bootstrap_scheme=bootstrap_scheme,
        n_bootstrap=B,
        test_method="bootstrap-t",
        p_values={names[i]: float(p) for i, p in zip(others, p_tau, strict=True)},
        p_holm={names[i]: float(p) for i, p in zip(others, p_holm_tau, strict=True)},
        p_gain=float(fo.p[t]),
        n_permutations=null.n_permutations,
        seed=seed,
    )
