"""The referee's regression: does a value's shift follow the target's, beyond how the items are
written?

For every non-target value v, over scenes x (and seeds s when an arm has several):

    D[s, x, v] = a_v + b_v * D[s, x, t] + c_v * len_diff[x, v] + d_v * neg_diff[x, v]
                 (+ g_v * mass_change[s, x, v]) + e

- ``D[s, x, t]``: the target's shift in the same scene: b_v is how much v moves per unit the
  target moves *within a scene*, the coupling a tax is made of;
- ``len_diff[x, v]``: words of the express minus the suppress action(s) of v in scene x;
- ``neg_diff[x, v]``: the same difference in negation/avoidance words (`vat.data.register`);
- ``mass_change[s, x, v]``: the change of the judgment probe's option-token mass on v's items
  (a model that stops answering with a digit moves every rating), when a judgment probe ran.

OLS by statsmodels, standard errors clustered by (country, domain) with the small-sample
correction and t reference (G - 1 degrees of freedom), variance inflation factors per covariate,
and Holm's correction across the nine b_v. A covariate without variation for a value (e.g. every
pair of v equally long) is dropped from that value's model and named in ``dropped``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.outliers_influence import variance_inflation_factor

from vat.data.register import features

TARGET_REGRESSOR = "target_shift"


@dataclass(frozen=True)
class ValueFit:
    value: str
    n: int
    n_clusters: int
    params: dict[str, float]
    se: dict[str, float]
    p: dict[str, float]
    ci: dict[str, tuple[float, float]]
    vif: dict[str, float]
    r2: float
    dropped: tuple[str, ...] = ()
    p_holm: float = float("nan")  # b_v's p, Holm-adjusted across the non-target values

    @property
    def b(self) -> float:
        return self.params.get(TARGET_REGRESSOR, float("nan"))


@dataclass(frozen=True)
class RefereeRegression:
    target: str
    covariates: tuple[str, ...]
    fits: dict[str, ValueFit] = field(default_factory=dict)
    ci: float = 0.95

    def equation(self) -> str:
        terms = " + ".join(
            ["a_v", f"b_v * D[x, {self.target}]"] + [f"{c}_v * {c}[x, v]" for c in self.covariates]
        )
        return (f"D[x, v] = {terms} + e, per non-target value v (OLS; standard errors clustered "
                "by (country, domain), t reference with G - 1 df; Holm across the b_v)")  # fmt: skip

    def table(self) -> pd.DataFrame:
        rows = []
        for v, f in self.fits.items():
            lo, hi = f.ci.get(TARGET_REGRESSOR, (np.nan, np.nan))
            row = {"value": v, "n": f.n, "clusters": f.n_clusters, "b": f.b,
                   "se_b": f.se.get(TARGET_REGRESSOR), "b_lo": lo, "b_hi": hi,
                   "p_b": f.p.get(TARGET_REGRESSOR), "p_b_holm": f.p_holm, "r2": f.r2}  # fmt: skip
            for c in self.covariates:
                row[c] = f.params.get(c, np.nan)
                row[f"p_{c}"] = f.p.get(c, np.nan)
            row["max_vif"] = max(f.vif.values()) if f.vif else np.nan
            row["dropped"] = ",".join(f.dropped)
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        return {"target": self.target, "equation": self.equation(),
                "covariates": list(self.covariates),
                "table": self.table().to_dict(orient="records")}  # fmt: skip


def register_covariates(
    items, scenes: Sequence[str], values: Sequence[str]
) -> dict[str, np.ndarray]:
    """``len_diff`` and ``neg_diff`` (scenes, values): express minus suppress, mean over the pairs of
    each (scene, value) of `items` (an `ItemSet`); NaN where a scene has no pair of a value."""
    sx = {s: i for i, s in enumerate(scenes)}
    vx = {v: j for j, v in enumerate(values)}
    acc = {k: np.zeros((len(scenes), len(values))) for k in ("len_diff", "neg_diff")}
    n = np.zeros((len(scenes), len(values)))
    for e, s in items.pairs():
        if e.scene_id not in sx or e.value not in vx:
            continue
        i, j = sx[e.scene_id], vx[e.value]
        fe, fs = features(e.action), features(s.action)
        acc["len_diff"][i, j] += fe["words"] - fs["words"]
        acc["neg_diff"][i, j] += fe["negation"] - fs["negation"]
        n[i, j] += 1
    with np.errstate(invalid="ignore"):
        return {k: np.where(n > 0, a / n, np.nan) for k, a in acc.items()}


def referee_regression(
    D, values: Sequence[str], target: str, clusters: Sequence[str], *,
    covariates: Mapping[str, np.ndarray] | None = None, ci: float = 0.95,
) -> RefereeRegression:  # fmt: skip
    """Fit the regression for every non-target value.

    Args:
        D: (seeds, scenes, values) shifts, or (scenes, values) for one run.
        values: the value names of D's last axis; `target` is one of them.
        clusters: one label per scene (e.g. ``"Germany|Religion"``): the clusters of the SEs.
        covariates: name -> (scenes, values) or (seeds, scenes, values) arrays (e.g.
            `register_covariates` and the option-mass change).
    """
    D = np.asarray(D, float)
    if D.ndim == 2:
        D = D[None]
    n_s, n_x, n_v = D.shape
    values = list(values)
    if len(values) != n_v or target not in values:
        raise ValueError(f"values {values} must name D's {n_v} columns and contain {target!r}")
    if len(clusters) != n_x:
        raise ValueError(f"{len(clusters)} cluster labels for {n_x} scenes")
    covariates = dict(covariates or {})
    cov3 = {}
    for name, a in covariates.items():
        a = np.asarray(a, float)
        a = np.broadcast_to(a[None] if a.ndim == 2 else a, D.shape)
        cov3[name] = a
    t = values.index(target)
    groups = np.tile(np.asarray(clusters), n_s)
    fits = {}
    for j, v in enumerate(values):
        if j == t:
            continue
        frame = pd.DataFrame({"y": D[:, :, j].ravel(), TARGET_REGRESSOR: D[:, :, t].ravel(),
                              **{c: a[:, :, j].ravel() for c, a in cov3.items()}})  # fmt: skip
        frame["cluster"] = groups
        frame = frame.dropna()
        dropped = tuple(c for c in cov3 if frame[c].nunique() < 2)
        regressors = [TARGET_REGRESSOR] + [c for c in cov3 if c not in dropped]
        fits[v] = _fit(v, frame, regressors, dropped, ci)
    b_p = [f.p.get(TARGET_REGRESSOR, np.nan) for f in fits.values()]
    finite = np.isfinite(b_p)
    adj = np.full(len(b_p), np.nan)
    if finite.any():
        adj[finite] = multipletests(np.asarray(b_p)[finite], method="holm")[1]
    fits = {v: _with_holm(f, float(a)) for (v, f), a in zip(fits.items(), adj, strict=True)}
    return RefereeRegression(target, tuple(cov3), fits, ci)


def _with_holm(f: ValueFit, p: float) -> ValueFit:
    from dataclasses import replace

    return replace(f, p_holm=p)


def _fit(
    v: str, frame: pd.DataFrame, regressors: list[str], dropped: tuple[str, ...], ci: float
) -> ValueFit:
    X = sm.add_constant(frame[regressors], has_constant="add")
    n, g = len(frame), frame["cluster"].nunique()
    nan = dict.fromkeys(["const", *regressors], np.nan)
    if n <= X.shape[1] or g < 2:
        return ValueFit(v, n, g, nan, nan, nan, {}, {}, np.nan, dropped)
    res = sm.OLS(frame["y"], X).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(frame["cluster"])[0]}, use_t=True
    )
    conf = res.conf_int(alpha=1 - ci)
    Xv = X.to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        vif = {c: float(variance_inflation_factor(Xv, i))
               for i, c in enumerate(X.columns) if c != "const"}  # fmt: skip
    return ValueFit(
        v, n, g, {k: float(x) for k, x in res.params.items()},
        {k: float(x) for k, x in res.bse.items()}, {k: float(x) for k, x in res.pvalues.items()},
        {k: (float(conf.loc[k, 0]), float(conf.loc[k, 1])) for k in res.params.index},
        vif, float(res.rsquared), dropped,
    )  # fmt: skip
