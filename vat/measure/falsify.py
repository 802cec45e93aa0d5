"""The falsification test over a sweep: each real arm against its placebo, over seeds, with the
predictions fixed in advance, a verdict, and what the design could have seen.

For an arm aligned toward target t (several seeds) and its placebo arm (same seeds, same held-out
scenes): the off-target profile of the run's own values and of each other taxonomy measured beside
it (``measure=[mft]``) is tested against its prediction (`vat.measure.predict`'s: the cosine on
the circle; Feldman 2021 for the foundations) with the label-permutation null, *net of the
placebo's profile*. The structure test that does not use the prediction: some value moved beyond
the placebo (the smallest Holm p of the net shifts, two-level bootstrap over seeds and scenes,
`vat.metrics.repeats.net_of_placebo`). The gain: the real arm's, over seeds and scenes; an
interval that covers 0 means nothing can be read. Minimum detectable effects at 80 % power come
from simulating the design that was run (its scenes, its seeds, its observed noise:
`vat.metrics.power`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

import numpy as np

from vat.metrics.power import estimate_noise, minimum_detectable_effect
from vat.metrics.prediction import circle_prediction, load_predictions, prediction_test
from vat.metrics.record import to_jsonable
from vat.metrics.repeats import NetOfPlacebo, net_of_placebo


def _test(nop: NetOfPlacebo, weights: Mapping[str, float], others: list[str], s: Mapping) -> dict:
    real = {v: nop.real.shift[v].value for v in others}
    plac = {v: nop.placebo.shift[v].value for v in others}
    p_holm = [nop.p_holm[v] for v in others if np.isfinite(nop.p_holm.get(v, np.nan))]
    g = nop.real.gain
    t = prediction_test(real, {v: weights[v] for v in others if v in weights},
                        n_perm=int(s["n_perm"]), rng=int(s["seed"]), method=s["method"],
                        placebo_profile=plac, gain=g.value, gain_ci=(g.lo, g.hi),
                        structure_p=min(p_holm) if p_holm else None, alpha=float(s["alpha"]))  # fmt: skip
    return to_jsonable(asdict(t))


def _mde(D: np.ndarray, values: list[str], t: int, weights: Mapping[str, float] | None,
         gain: float, n_sim: int, seed: int, own: bool = True) -> dict[str, float]:  # fmt: skip
    """MDEs (80 % power) of the design behind ``D`` (seeds, scenes, values): gain (score units),
    GND (per unit gain), debiased nVAT (a Spearman correlation) for the run's own values
    (``own``), and the prediction (SD of the planted profile, score units)."""
    n_seeds, n_scenes, _ = D.shape
    nm = estimate_noise(D)
    out = {}
    kinds = {"gain": {}, "gnd": {"gain": gain}, "nvat": {}} if own else {}
    for kind, kw in kinds.items():
        if kind == "gnd" and not (np.isfinite(gain) and gain != 0):
            out[kind] = float("nan")  # GND is per unit gain: undefined without one
            continue
        r = minimum_detectable_effect(kind, n_scenes, n_seeds, nm, n_sim=n_sim, rng=seed,
                                      target=t, **kw)  # fmt: skip
        out[kind] = r.mde
    if weights:
        cols = [values.index(v) for v in weights]
        sub = estimate_noise(D[:, :, cols])
        r = minimum_detectable_effect("prediction", n_scenes, n_seeds, sub, n_sim=n_sim,
                                      rng=seed, weights=list(weights.values()))  # fmt: skip
        out["prediction"] = r.mde
    return out


def arm_verdicts(D_real: np.ndarray, D_plac: np.ndarray, values: list[str], target: str,
                 taxonomy, cross: Mapping[str, tuple[np.ndarray, np.ndarray, list[str]]],
                 settings: Mapping, *, n_boot: int = 2000, ci: float = 0.95,
                 n_sim: int = 400) -> dict[str, dict]:  # fmt: skip
    """``{measured taxonomy: {"test": PredictionTest dict, "mde": {...}, "n_seeds", "n_scenes"}}``.

    ``D_real``, ``D_plac``: (seeds, scenes, values) shifts of the run's own values, the same scenes
    in the same order; ``cross``: taxonomy -> (D_real, D_plac, its values) on those scenes."""
    s = dict(settings)
    t = values.index(target)
    others = [v for v in values if v != target]
    nop = net_of_placebo(D_real, D_plac, values, target, n_boot=n_boot, ci=ci, seed=int(s["seed"]))
    gain = nop.real.gain.value
    out: dict[str, dict] = {}
    shape = {"n_seeds": int(D_real.shape[0]), "n_scenes": int(D_real.shape[1])}
    if s.get("within") == "circle" and taxonomy.structure_kind == "circle":
        w = circle_prediction(taxonomy, target, values)
        out[taxonomy.name] = {"prediction": "circle", "test": _test(nop, w, others, s),
                              "mde": _mde(D_real, values, t, w, gain, n_sim, int(s["seed"])),
                              **shape}  # fmt: skip
    table = load_predictions(s["cross"]) if s.get("cross") else {}
    for tax, (X_real, X_plac, x_values) in cross.items():
        w = {v: x for v, x in (table.get(target) or {}).items() if v in x_values}
        if not w:
            continue
        # the run's target column rides along so that the two-level bootstrap has its gain and
        # Holm runs over this taxonomy's values only
        A = np.concatenate([X_real, D_real[:, :, [t]]], axis=2)
        B = np.concatenate([X_plac, D_plac[:, :, [t]]], axis=2)
        names = [*x_values, target]
        nop_x = net_of_placebo(A, B, names, target, n_boot=n_boot, ci=ci, seed=int(s["seed"]))
        out[tax] = {"prediction": s["cross"], "test": _test(nop_x, w, list(x_values), s),
                    "mde": _mde(A, names, len(x_values), w, gain, n_sim, int(s["seed"]), own=False),
                    **shape}  # fmt: skip
    return out


def falsification_rows(sweep_dir, nets: list, *, ci: float, n_boot: int) -> list[dict]:
    """Per real arm with a placebo (``nets``: the (real, placebo, NetOfPlacebo) triples of
    `vat.measure.arms.analyse`) whose cells stated a prediction: its `arm_verdicts`, over the
    cells' own shifts and those of every taxonomy they measured beside them."""
    from omegaconf import OmegaConf

    from vat.measure.arms import cross_runs, paired
    from vat.measure.falsify import arm_verdicts
    from vat.taxonomy import DEFAULT_TAXONOMY, taxonomy_named

    rows = []
    for real, plac, _ in nets:
        settings = OmegaConf.select(real["cfg"], "prediction")
        taxonomy = taxonomy_named(
            OmegaConf.select(real["cfg"], "taxonomy.name", default=DEFAULT_TAXONOMY)
        )
        if settings is None or taxonomy is None:
            continue
        D_real, D_plac, scenes = paired(real, plac)
        cross = {}
        for tax in OmegaConf.select(real["cfg"], "measure", default=None) or []:
            xr, xp = (
                cross_runs(sweep_dir, real, tax, scenes),
                cross_runs(sweep_dir, plac, tax, scenes),
            )
            if xr is not None and xp is not None:
                cross[tax] = (xr[0], xp[0], xr[1])
        verdicts = arm_verdicts(D_real, D_plac, list(real["values"]), real["value"], taxonomy,
                                cross, OmegaConf.to_container(settings), n_boot=n_boot, ci=ci)  # fmt: skip
        rows.append({"model": real["model"], "target": real["value"], "method": real["method"],
                     "placebo": plac["method"], "probe": real["probe"], "verdicts": verdicts})  # fmt: skip
    return rows
