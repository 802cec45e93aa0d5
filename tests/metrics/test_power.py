"""Power by simulation (`vat.metrics.power`): it recovers known power where the answer is analytic
(the t test of the gain, Bonferroni over independent values for GND), it holds the test's size at
delta = 0, it agrees with running the project's own tests on simulated data (nVAT's permutation
null, `prediction_test`), and the noise model is recovered from simulated shifts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize, stats

from vat.metrics.coupling import coupling, nvat_offdiag
from vat.metrics.nulls import coupling_null
from vat.metrics.power import (
    NoiseModel,
    estimate_noise,
    minimum_detectable_effect,
    noise_model,
    power_at,
)
from vat.metrics.prediction import load_predictions, prediction_test

FELDMAN_BEN = load_predictions()["benevolence"]


def t_power(delta: float, n: int, sigma: float, alpha: float = 0.05) -> float:
    """Two-sided one-sample t test power: T ~ noncentral t(n - 1, delta sqrt(n) / sigma)."""
    c = stats.t.ppf(1 - alpha / 2, n - 1)
    nc = delta * np.sqrt(n) / sigma
    return float(stats.nct.sf(c, n - 1, nc) + stats.nct.cdf(-c, n - 1, nc))


def bonferroni_power(delta: float, n: int, sigma: float, m: int, alpha: float = 0.05) -> float:
    """max |t_v| over m independent values, each shifted by delta, against t_{1 - alpha / 2m}."""
    c = stats.t.ppf(1 - alpha / (2 * m), n - 1)
    nc = delta * np.sqrt(n) / sigma
    accept = stats.nct.cdf(c, n - 1, nc) - stats.nct.cdf(-c, n - 1, nc)
    return float(1 - accept**m)


def mc_ok(sim: float, truth: float, n_sim: int, k: float = 3.5) -> bool:
    return abs(sim - truth) <= k * np.sqrt(truth * (1 - truth) / n_sim) + 1e-9


# --------------------------------------------------------------------------------------------------
# recovery of analytic power


@pytest.mark.parametrize(("n", "sigma", "delta"), [(14, 0.1, 0.06), (40, 1.0, 0.3), (14, 1.0, 0.0)])
def test_gain_power_matches_the_noncentral_t(n, sigma, delta):
    """Measured at n_sim = 4000: 14 scenes, SD 0.1, gain 0.06: 0.561 vs 0.547 analytic (1.8 SE);
    40 scenes, SD 1, 0.3: 0.453 vs 0.457; size at 0: 0.052 vs 0.05."""
    r = power_at("gain", delta, n, 1, sigma, n_values=10, n_sim=4000, rng=3)
    assert mc_ok(r.power, t_power(delta, n, sigma), 4000), (r.power, t_power(delta, n, sigma))
    assert r.unit == "score units" and r.n_sim == 4000


def test_gain_mde_matches_the_analytic_mde():
    """14 scenes, SD 1: analytic MDE 0.8101; simulated 0.8106 (n_sim 1000) and 0.8101 (4000)."""
    n, sigma = 14, 1.0
    analytic = optimize.brentq(lambda d: t_power(d, n, sigma) - 0.8, 0.01, 2.0)
    for n_sim, tol in [(1000, 0.04), (4000, 0.02)]:
        r = minimum_detectable_effect("gain", n, 1, sigma, n_values=10, n_sim=n_sim, rng=0)
        assert r.mde == pytest.approx(analytic, rel=tol), (r.mde, analytic)
        assert r.achieved_power >= 0.8
    # the MDE scales with the noise and with 1 / sqrt(n), as the t test's does
    r2 = minimum_detectable_effect("gain", n, 1, 0.1, n_values=10, n_sim=1000, rng=0)
    assert r2.mde == pytest.approx(0.1 * r.mde, rel=0.05)


def test_gnd_power_matches_bonferroni_over_independent_values():
    """10 values (target + 9), independent unit noise, gain 0.5, 14 scenes, one seed: compute_vat's
    p_drift rejects exactly when Bonferroni does; the analytic power at GND 0.8 (every off-target
    value drifting by 0.4) is 0.474, simulated 0.468 at n_sim 4000; the analytic MDE 1.117,
    simulated 1.107 at n_sim 2000 (within 3 %)."""
    n, gain, m = 14, 0.5, 9
    r = power_at("gnd", 0.8, n, 1, 1.0, n_values=10, gain=gain, n_sim=4000, rng=5)
    truth = bonferroni_power(0.8 * gain, n, 1.0, m)
    assert mc_ok(r.power, truth, 4000), (r.power, truth)
    analytic = optimize.brentq(lambda d: bonferroni_power(d * gain, n, 1.0, m) - 0.8, 0.01, 3.0)
    mde = minimum_detectable_effect("gnd", n, 1, 1.0, n_values=10, gain=gain, n_sim=2000, rng=1)
    assert mde.mde == pytest.approx(analytic, rel=0.03), (mde.mde, analytic)
    with pytest.raises(ValueError, match="needs the gain"):
        power_at("gnd", 0.5, n, 1, 1.0, n_values=10)


@pytest.mark.parametrize("seeds", [1, 3])
@pytest.mark.parametrize("kind", ["gain", "gnd", "nvat"])
def test_size_at_zero_with_seed_noise(kind, seeds):
    """With seed-to-seed variance the critical value is simulated (no exact df; one run's SE does
    not see it): size within MC error of 0.05, for one seed as for three."""
    r = power_at(kind, 0.0, 14, seeds, 1.0, n_values=6, resid_share=0.5, seed_sd=0.3, gain=1.0,
                 n_sim=3000, rng=2)  # fmt: skip
    assert mc_ok(r.power, 0.05, 3000), r.power


# --------------------------------------------------------------------------------------------------
# agreement with the project's own tests on simulated data


def test_nvat_power_agrees_with_the_column_permutation_test():
    """Equicorrelated normal shifts (Pearson rho = 0.4: Spearman 0.39), 14 scenes x 6 values: the
    fraction of 150 designs whose `coupling_null` p is < 0.05 (0.71 measured) matches `power_at`
    (0.76 at n_sim 2000) within Monte Carlo error of both."""
    n, V, rho = 14, 6, 0.4
    delta = 6 / np.pi * np.arcsin(rho / 2)
    r = power_at("nvat", delta, n, 1, 1.0, n_values=V, n_sim=2000, rng=4)
    rng = np.random.default_rng(9)
    hits = []
    for i in range(150):
        D = np.sqrt(1 - rho) * rng.standard_normal((n, V)) + np.sqrt(rho) * rng.standard_normal(
            (n, 1)
        )
        R = coupling(D, min_overlap=0)
        null = coupling_null(D, R, method="spearman", min_overlap=0, n_permutations=199, seed=i)
        hits.append(null.p_nvat_offdiag < 0.05)
        assert np.isfinite(nvat_offdiag(R))
    se = np.sqrt(r.power * (1 - r.power) * (1 / 150 + 1 / 2000))
    assert abs(np.mean(hits) - r.power) <= 3.5 * se, (np.mean(hits), r.power)


def test_prediction_power_agrees_with_prediction_test():
    """Feldman's benevolence row, planted pattern SD 0.25 score units, scene SD 1 at 14 scenes and
    one seed: `power_at` (0.473) against `prediction_test` run on 300 simulated designs (0.48). At 0
    the size is the row's exact 2/60 (0.0325 simulated): a p of exactly 0.05 does not reject."""
    w = np.array(list(FELDMAN_BEN.values()))
    delta, n = 0.25, 14
    r = power_at("prediction", delta, n, 1, 1.0, weights=w, n_sim=2000, rng=6)
    rng = np.random.default_rng(8)
    pattern = (w - w.mean()) / w.std()
    Y = (delta * pattern + rng.standard_normal((300, n, w.size))).mean(axis=1)
    hits = [prediction_test(y, w, rng=0).p_value < 0.05 for y in Y]
    se = np.sqrt(r.power * (1 - r.power) * (1 / 300 + 1 / 2000))
    assert abs(np.mean(hits) - r.power) <= 3.5 * se, (np.mean(hits), r.power)
    size = power_at("prediction", 0.0, n, 1, 1.0, weights=w, n_sim=2000, rng=6).power
    assert mc_ok(size, 2 / 60, 2000), size


def test_unattainable_prediction_has_no_mde():
    """Hedonism's Feldman row (five equal weights and liberty 0: minimum p 1/6) never reaches
    p < 0.05, whatever the effect: the MDE is NaN, not a large number."""
    w = list(load_predictions()["hedonism"].values())
    r = minimum_detectable_effect("prediction", 14, 1, 1.0, weights=w, n_sim=200, rng=0)
    assert np.isnan(r.mde) and r.achieved_power == 0.0


# --------------------------------------------------------------------------------------------------
# the noise model


def test_more_seeds_help_only_where_the_noise_differs_between_seeds():
    kw = dict(n_values=10, n_sim=1000, rng=0)
    shared = [minimum_detectable_effect("gain", 14, s, 1.0, **kw).mde for s in (1, 3)]
    split = [minimum_detectable_effect("gain", 14, s, 1.0, resid_share=0.5, **kw).mde
             for s in (1, 3)]  # fmt: skip
    assert shared[1] == pytest.approx(shared[0], rel=0.08)  # all scene noise shared by seeds
    assert split[1] < 0.9 * split[0]  # half of it averages out over 3 seeds


def test_estimate_noise_recovers_the_components():
    rng = np.random.default_rng(0)
    S, X, V = 6, 400, 3
    A = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 1.0]])
    nm = NoiseModel(A, 0.25 * np.eye(V), 0.04 * np.eye(V))
    from vat.metrics.power import _draw_D

    D = _draw_D(nm, 1, X, S, rng)[0] + 0.3
    est = estimate_noise(D)
    assert np.allclose(est.scene_cov, A, atol=0.15)
    assert np.allclose(est.resid_cov, 0.25 * np.eye(V), atol=0.03)
    assert np.allclose(np.diag(est.seed_cov), 0.04, atol=0.05)
    one = estimate_noise(D[0])  # one run: everything is scene noise
    assert np.allclose(one.resid_cov, 0) and np.allclose(one.seed_cov, 0)
    assert np.allclose(one.scene_cov, A + 0.25 * np.eye(V), atol=0.2)


def test_noise_model_inputs():
    nm = noise_model(2.0, n_values=3, corr=0.5, resid_share=0.25, seed_sd=0.1)
    assert np.allclose(nm.scene_cov + nm.resid_cov, [[4, 2, 2], [2, 4, 2], [2, 2, 4]])
    assert np.allclose(nm.seed_cov, 0.01 * np.eye(3))
    assert noise_model([1.0, 2.0]).scene_cov[1, 1] == 4.0
    assert noise_model(nm) is nm
    with pytest.raises(ValueError, match="needs n_values"):
        noise_model(1.0)
    with pytest.raises(ValueError, match="square"):
        noise_model(np.ones((2, 3)))
    with pytest.raises(ValueError, match="resid_share"):
        noise_model(1.0, n_values=2, resid_share=2.0)
    with pytest.raises(ValueError, match="unknown kind"):
        power_at("tax", 0.1, 14, 1, 1.0, n_values=3)
    with pytest.raises(ValueError, match="n_scenes"):
        power_at("gain", 0.1, 2, 1, 1.0, n_values=3)


def test_power_design_cli(capsys):
    """benchmarks/power_design.py prints one row per design and names the smallest for a GND."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "power_design.py"
    spec = importlib.util.spec_from_file_location("power_design", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--scenes", "14,40", "--seeds", "1", "--kinds", "gain,gnd", "--n-sim", "200",
                     "--gnd", "5"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| 14 ") or ln.startswith("| 40 ")]
    assert len(rows) == 2 and "MDE gnd" in out
    assert "GND 5.0: detectable at 80 % power from 14 scenes x 1 seeds" in out
