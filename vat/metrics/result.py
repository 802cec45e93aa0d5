"""`compute_vat`: every VAT quantity for one comparison, bundled in a `VATResult`
(`vat.metrics.record`); `eps_threshold`, the smallest gain a ratio is reported for."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vat.metrics._common import (
    _NAN,
    BootstrapScheme,
    CouplingMethod,
    EpsUnits,
    _as_matrix,
    _check_eps,
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
from vat.metrics.record import VATResult
from vat.metrics.resampling import (
    holm,
    resample_stats,
    resample_weights,
    rescaled,
)
from vat.metrics.settings import DEFAULT_EPS_SD as DEFAULT_EPS_SD  # re-exported
from vat.metrics.settings import MetricsSettings
from vat.metrics.structure import cluster_contrast, cosine_profile, rthor
from vat.taxonomy import Taxonomy

_DEFAULT = MetricsSettings()  # compute_vat's defaults: the settings' own


def eps_threshold(S_pre: Any, eps: float, units: str) -> tuple[float, str]:
    """The |G| threshold in score units, and the units it was finally taken in.

    ``units="pre_sd"``: ``eps`` times the pre state's scene standard deviation (the RMS over values
    of each column's SD across scenes, ddof=1), so one setting means the same for probes whose
    score units differ by an order of magnitude (likelihood margins in nats, centred Likert
    ratings). When that SD is undefined or zero (one scene, a constant state) eps is taken in
    score units and ``"score"`` is returned. ``units="score"``: eps as given.
    """
    eps = _check_eps(eps)
    if EpsUnits.parse(units, "eps_units") == EpsUnits.score:
        return eps, "score"
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


def _matrix(M: np.ndarray) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in M)


def _seeds(seed: int | None) -> tuple[np.random.Generator, ...]:
    """Independent streams for the bootstrap, the column permutations, the Mantel test and the
    structure statistics (a fourth stream: the first three draw as before it existed)."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))


def compute_vat(
    S_pre: Any,
    S_post: Any,
    target: str,
    taxonomy: Taxonomy,
    values: Sequence[str] | None = None,
    *,
    eps: float = _DEFAULT.eps,
    eps_units: EpsUnits | str = _DEFAULT.eps_units,
    coupling_method: CouplingMethod | str = _DEFAULT.coupling_method,
    min_overlap: int = _DEFAULT.min_overlap,
    n_bootstrap: int = _DEFAULT.n_bootstrap,
    n_permutations: int = _DEFAULT.n_permutations,
    seed: int | None = _DEFAULT.seed,
    hub_k: int = _DEFAULT.hub_k,
    bootstrap_scheme: BootstrapScheme | str = _DEFAULT.bootstrap_scheme,
    subsample_frac: float = _DEFAULT.subsample_frac,
    ci: float = _DEFAULT.ci,
) -> VATResult:
    """All VAT metrics for an intervention aimed at `target`, from paired pre/post states.

    ``taxonomy`` is the value system the columns belong to; ``values`` names the columns: all of its
    values (any spelling; default ``taxonomy.value_names``) or all micro-values (micro level; then
    `target` is a micro-value). The taxonomy's structure picks the structure statistics
    (`structure_stats`): a circle's circumplex consistency with its Mantel test, RTHOR and cosine
    profile, a cluster contrast, or none. ``eps`` is the smallest |gain| for
    which ratios are reported, in ``eps_units`` (see `eps_threshold`). ``n_bootstrap`` scene
    resamples give the first-order tests and intervals (`vat.metrics.inference`), the GND and nVAT
    intervals and the hub frequencies; ``n_permutations`` column permutations give the coupling
    nulls and as many label permutations the Mantel test (`vat.metrics.nulls`). 0 skips them
    (reported as NaN). ``bootstrap_scheme="subsample"`` takes the GND/nVAT intervals and hub
    frequencies from rescaled 80 % subsamples instead; the tests always use the bootstrap-t.
    The settings are checked together, all bad ones named at once (`MetricsSettings`).
    """
    names, level = taxonomy.level_of(taxonomy.value_names if values is None else values)
    D = shift(S_pre, S_post)
    n, V = D.shape
    if len(names) != V:
        raise ValueError(f"states have {V} columns but {len(names)} values were named")
    norm = taxonomy.normalize_value if level == "basic" else taxonomy.normalize_micro_value
    tname = norm(target)
    if tname not in names:
        raise ValueError(f"target {tname!r} is not among the values {list(names)}")
    settings = MetricsSettings(eps=eps, eps_units=eps_units, coupling_method=coupling_method,
                               min_overlap=min_overlap, n_bootstrap=n_bootstrap,
                               bootstrap_scheme=bootstrap_scheme, subsample_frac=subsample_frac,
                               ci=ci, n_permutations=n_permutations, hub_k=hub_k, seed=seed)  # fmt: skip
    # choices as plain strings from here on (the result records them)
    eps_units, coupling_method, bootstrap_scheme = (
        settings.kwargs()[k] for k in ("eps_units", "coupling_method", "bootstrap_scheme")
    )
    t = names.index(tname)
    eps_abs, units = eps_threshold(S_pre, eps, eps_units)
    others = [i for i in range(V) if i != t]
    rng_boot, rng_perm, rng_mantel, rng_structure = _seeds(seed)
    nan2 = (_NAN, _NAN)

    m = mean_shift(D)
    drift = gnd(D, t, eps_abs)
    taus = tax(D, t, eps_abs)
    R = coupling(D, coupling_method, min_overlap)
    hub = hubs(R, names, hub_k)
    angles = taxonomy.angles(names)
    cc = circumplex_consistency(R, angles) if angles is not None else _NAN
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
    mantel = (
        mantel_circumplex(R, angles, n_permutations=n_permutations, seed=rng_mantel)
        if angles is not None
        else None
    )
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
        circumplex_null=mantel.null_mean if mantel else _NAN,
        circumplex_excess=cc - mantel.null_mean
        if mantel and np.isfinite(mantel.null_mean)
        else _NAN,
        p_circumplex=mantel.p_value if mantel else _NAN,
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
        taxonomy=taxonomy.name,
        structure_kind=taxonomy.structure_kind,
        structure=structure_stats(taxonomy, names, t, R, m, n_permutations, rng_structure),
        hub_p_holm=per(holm(null.hub_p)),
    )


def structure_stats(taxonomy: Taxonomy, names, t: int, R: np.ndarray, m: np.ndarray,
                    n_permutations: int, rng) -> dict[str, float]:  # fmt: skip
    """The structure statistics the taxonomy's declared structure calls for (`vat.metrics.structure`).

    Circle: RTHOR of the coupling against the circle's order (``rthor_*``) and the cosine profile
    of the off-target mean shifts over the angles, the target left out (``cosine_*``; the
    prediction "the profile peaks at the target" is ``cosine_target_loading`` with its one-sided
    ``cosine_p_target``). Clusters: within- minus between-cluster coupling (``cluster_*``). No
    structure, or no permutations asked for: empty (the report omits the section)."""
    B = int(n_permutations)
    if B == 0 or taxonomy.structure is None:
        return {}
    if taxonomy.structure_kind == "clusters":
        c = cluster_contrast(R, taxonomy.cluster_labels(names), n_perm=B, rng=rng)
        return {"cluster_contrast": c.contrast, "cluster_within": c.within,
                "cluster_between": c.between, "cluster_p": c.p_value}  # fmt: skip
    circle = taxonomy.structure
    slots = [circle.slot(v) for v in taxonomy.parents(names)]
    rt = rthor(R, slots, circle.n_slots, n_perm=B, rng=rng)
    ang = taxonomy.angles(names)
    mask = np.ones(len(names), dtype=bool)
    mask[t] = False
    cp = cosine_profile(m, ang, ang[t], mask=mask, n_perm=B, rng=rng)
    return {"rthor_ci": rt.ci, "rthor_p": rt.p_value, "cosine_amplitude": cp.amplitude,
            "cosine_displacement": cp.displacement, "cosine_r2": cp.r_squared,
            "cosine_p": cp.p_value, "cosine_target_distance": cp.target_distance,
            "cosine_target_loading": cp.target_loading, "cosine_p_target": cp.p_target}  # fmt: skip
