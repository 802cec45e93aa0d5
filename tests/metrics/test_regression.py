"""The referee's regression against statsmodels fitted directly, and by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, load_items
from vat.metrics.regression import TARGET_REGRESSOR, referee_regression, register_covariates

V = ["t", "a", "b"]


def _example(n_x=24, n_s=1, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.normal(0, 1, (n_s, n_x, 3))
    D[:, :, 1] = 0.5 * D[:, :, 0] + rng.normal(0, 0.3, (n_s, n_x))  # a follows the target
    cov = {"len_diff": rng.integers(-3, 4, (n_x, 3)).astype(float)}
    clusters = [f"c{i // 2}" for i in range(n_x)]  # 2 scenes per (country, domain)
    return D, cov, clusters


def test_matches_statsmodels_fitted_directly():
    D, cov, clusters = _example(n_s=2)
    reg = referee_regression(D, V, "t", clusters, covariates=cov)
    f = reg.fits["a"]
    frame = pd.DataFrame({"y": D[:, :, 1].ravel(), "x": D[:, :, 0].ravel(),
                          "len_diff": np.tile(cov["len_diff"][:, 1], 2),
                          "g": np.tile(clusters, 2)})  # fmt: skip
    ref = smf.ols("y ~ x + len_diff", frame).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(frame["g"])[0]}, use_t=True
    )
    assert f.b == pytest.approx(ref.params["x"])
    assert f.se[TARGET_REGRESSOR] == pytest.approx(ref.bse["x"])
    assert f.p[TARGET_REGRESSOR] == pytest.approx(ref.pvalues["x"])
    assert f.params["len_diff"] == pytest.approx(ref.params["len_diff"])
    assert f.r2 == pytest.approx(ref.rsquared)
    assert f.n == 48 and f.n_clusters == 12
    assert 0.4 < f.b < 0.6 and f.p_holm < 0.01


def test_exact_line_by_hand_and_holm():
    x = np.arange(10.0)
    D = np.stack([x, 2 * x + 1, np.r_[x[:5], -x[5:]] * 0 + 3.0 + (x % 2)], axis=1)
    reg = referee_regression(D, V, "t", [str(i) for i in range(10)])
    assert reg.fits["a"].b == pytest.approx(2.0)
    assert reg.fits["a"].params["const"] == pytest.approx(1.0)
    # Holm across the two b's: the smaller p times 2, the larger max'd with it
    p = sorted(f.p[TARGET_REGRESSOR] for f in reg.fits.values())
    adj = sorted(f.p_holm for f in reg.fits.values())
    assert adj[0] == pytest.approx(min(1.0, 2 * p[0]))
    assert adj[1] == pytest.approx(max(adj[0], p[1]))
    assert "b_v * D[x, t]" in reg.equation() and "clustered" in reg.equation()


def test_constant_covariate_is_dropped_and_vif_reported():
    D, cov, clusters = _example()
    cov["neg_diff"] = np.zeros((24, 3))
    reg = referee_regression(D, V, "t", clusters, covariates=cov)
    f = reg.fits["a"]
    assert f.dropped == ("neg_diff",) and "neg_diff" not in f.params
    assert set(f.vif) == {TARGET_REGRESSOR, "len_diff"} and all(v >= 1 for v in f.vif.values())
    table = reg.table()
    assert list(table["value"]) == ["a", "b"] and table["dropped"].iloc[0] == "neg_diff"


def test_errors_name_the_problem():
    D, _, clusters = _example()
    with pytest.raises(ValueError, match="cluster labels"):
        referee_regression(D, V, "t", clusters[:3])
    with pytest.raises(ValueError, match="contain 'x'"):
        referee_regression(D, V, "x", clusters)


def test_register_covariates_on_bundled_items():
    items = load_items(BUNDLED, SCHWARTZ)
    scenes = items.scenes()[:3]
    values = items.values()
    cov = register_covariates(items, scenes, values)
    assert cov["len_diff"].shape == (3, 10)
    e, s = next(
        (e, s) for e, s in items.pairs() if e.scene_id == scenes[0] and e.value == values[0]
    )
    assert cov["len_diff"][0, 0] == len(e.action.split()) - len(s.action.split())
