"""Predictions fixed in advance, tested on a run's result (`vat.metrics.prediction`).

Two predictions, both declared in the config before the run (``prediction``):

- ``within``: ``circle`` predicts that the off-target shifts of the run's own values follow a
  cosine peaking at the target (a taxonomy with a circle, Schwartz's). The prediction-free
  structure test beside it is the tax-unevenness test (``p_uneven``: the other values did not all
  move by one common amount).
- ``cross``: a predictions file (``feldman2021``: training toward a Schwartz value moves the moral
  foundations in the pattern of the values-foundations literature) tested on each other taxonomy
  measured beside the run (``measure=[mft]``). Its structure test: some value of that taxonomy
  moved (the smallest Holm p of its shifts).

Each gives a verdict: structured as predicted, structured but not as predicted, not
distinguishable from random, or the gain is not above noise (nothing can be read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np

from vat.metrics import VATResult
from vat.metrics.prediction import circle_prediction, load_predictions, prediction_test
from vat.metrics.record import to_jsonable


def predictions_for(res: VATResult, taxonomy, cross: Mapping[str, Any], settings: Mapping,
                    placebo: VATResult | None = None) -> dict[str, dict]:  # fmt: skip
    """``{measured taxonomy: PredictionTest as a dict}`` for one result (``cross``: taxonomy ->
    `vat.metrics.cross.CrossShift`); ``settings``: the ``prediction`` config node."""
    s = dict(settings)
    common = {"n_perm": int(s["n_perm"]), "method": s["method"], "alpha": float(s["alpha"]),
              "gain": res.gain, "gain_ci": tuple(res.intervals.get("gain", (np.nan, np.nan)))}  # fmt: skip
    out: dict[str, dict] = {}
    if s.get("within") == "circle" and taxonomy.structure_kind == "circle" and res.level == "basic":
        weights = circle_prediction(taxonomy, res.target, res.values)
        placebo_profile = placebo.mean_shift if placebo is not None else None
        t = prediction_test(res.mean_shift, weights, rng=int(s["seed"]), target=res.target,
                            structure_p=res.p_uneven, placebo_profile=placebo_profile, **common)  # fmt: skip
        out[taxonomy.name] = {"prediction": "circle", **to_jsonable(asdict(t))}
    table = load_predictions(s["cross"]) if s.get("cross") else {}
    for tax, cs in cross.items():
        weights = {v: w for v, w in (table.get(res.target) or {}).items() if v in cs.values}
        if not weights:
            continue
        p_holm = [p for p in cs.p_holm.values() if np.isfinite(p)]
        t = prediction_test(cs.shift, weights, rng=int(s["seed"]),
                            structure_p=min(p_holm) if p_holm else None, **common)  # fmt: skip
        out[tax] = {"prediction": s["cross"], **to_jsonable(asdict(t))}
    return out
