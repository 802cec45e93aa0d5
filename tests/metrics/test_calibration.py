"""Calibration: every p-value's false-positive rate and every interval's coverage, by simulation.

States are simulated where the truth is known (independent normal shifts across scenes, so no
coupling; a chosen mean shift per value), at the bundled held-out split's 14 scenes and the
paper's ~80. A rate passes when it lies in the central 99.9 % binomial band of its nominal value
(0.05 for a p-value at alpha = 0.05, 0.95 for a 95 % interval) over the simulated datasets.

Quantities whose truth sits on the boundary of their range under the null (GND = 0 and nVAT = 0
when nothing drifts or couples) cannot have exact coverage with a non-negative estimator; their
intervals are built to be conservative there, so only the lower side of the band is asserted,
and the measured coverage is printed in the README's statistics section.

Seeded and deterministic. The numbers of the current implementation are in the closing note of
the calibration issue and in benchmarks/calibration.py, which prints before/after tables.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.schwartz import SCHWARTZ
from vat import metrics as M
from vat.metrics.resampling import resample_weights

pytestmark = pytest.mark.slow  # about a minute in all; runs in CI

N_DATASETS = 500
B = 200  # resamples and permutations per dataset: p-value resolution 1/201, enough at 0.05
V = 10
T = 8  # target column (benevolence)


def band(nominal: float, n: int) -> tuple[float, float]:
    lo, hi = stats.binom.interval(0.999, n, nominal)
    return lo / n, hi / n


def assert_rate(rate: float, nominal: float, n: int, what: str, *, lower_only: bool = False):
    lo, hi = band(nominal, n)
    if lower_only:
        assert rate >= lo, f"{what}: {rate:.3f} below the band [{lo:.3f}, {hi:.3f}] of {nominal}"
    else:
        assert lo <= rate <= hi, f"{what}: {rate:.3f} outside [{lo:.3f}, {hi:.3f}] of {nominal}"


def covers(iv, truth) -> np.ndarray:
    iv = np.asarray(iv, dtype=float)
    return (iv[..., 0] <= truth) & (truth <= iv[..., 1])


def simulate(n: int, mu: np.ndarray, seed: int, n_datasets: int = N_DATASETS) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_datasets, n, mu.size)) + mu


# --------------------------------------------------------------------------------------------------
# the full comparison under "nothing but the target moved": every p-value and interval at once


@pytest.fixture(scope="module", params=[14, 80], ids=["n14", "n80"])
def null_results(request):
    n = request.param
    mu = np.zeros(V)
    mu[T] = 1.0  # the target moved by one noise SD; nothing else moved, nothing is coupled
    D = simulate(n, mu, seed=n)
    pre = np.zeros((n, V))
    res = [
        M.compute_vat(
            pre, pre + d, "benevolence", SCHWARTZ, n_bootstrap=B, n_permutations=B, seed=i
        )
        for i, d in enumerate(D)
    ]
    return n, res


def test_first_order_p_values_hold_their_level_under_the_null(null_results):
    n, res = null_results
    p = np.array([list(r.p_values.values()) for r in res])  # (datasets, 9), independent columns
    assert_rate(np.mean(p < 0.05), 0.05, p.size, f"tau p-values, n={n}")
    # Holm bounds the family-wise error (<= 0.05; with 200 resamples its smallest reachable
    # threshold 0.05 / 9 is near the p-value resolution 1 / 201, so it is conservative here)
    fwer = np.mean([min(r.p_holm.values()) < 0.05 for r in res])
    assert fwer <= band(0.05, len(res))[1], f"Holm family-wise error {fwer}, n={n}"
    drift = np.mean([r.p_drift < 0.05 for r in res])
    assert drift == fwer  # p_drift is Holm's global test
    assert_rate(np.mean([r.p_uneven < 0.05 for r in res]), 0.05, len(res), f"p_uneven, n={n}")


def test_second_order_p_values_hold_their_level_under_the_null(null_results):
    n, res = null_results
    iu = np.triu_indices(V, 1)
    Rp = np.array([np.array(r.R_p)[iu] for r in res])
    # pairs within a dataset share columns, so pool the rate but size the band by datasets
    assert_rate(np.mean(Rp < 0.05), 0.05, len(res), f"R entry p-values, n={n}")
    fwer = np.mean([np.nanmin(np.array(r.R_p_holm)[iu]) < 0.05 for r in res])
    assert fwer <= band(0.05, len(res))[1], f"R Holm family-wise error {fwer}, n={n}"
    for key in ("p_nvat", "p_nvat_paper", "p_circumplex"):
        rate = np.mean([getattr(r, key) < 0.05 for r in res])
        assert_rate(rate, 0.05, len(res), f"{key}, n={n}")
    hub = np.array([list(r.hub_p.values()) for r in res])
    assert_rate(np.mean(hub < 0.05), 0.05, len(res), f"hub p-values, n={n}")


def test_intervals_cover_under_the_null(null_results):
    n, res = null_results
    gain = covers([r.intervals["gain"] for r in res], 1.0)
    assert_rate(gain.mean(), 0.95, len(res), f"gain interval, n={n}")
    others = list(res[0].tau)
    tau = covers([[r.intervals[f"tau.{v}"] for v in others] for r in res], 0.0)
    assert_rate(tau.mean(), 0.95, len(res), f"tau intervals, n={n}")
    d_t = covers([r.intervals["d_z.benevolence"] for r in res], 1.0)
    assert_rate(d_t.mean(), 0.95, len(res), f"d_z interval, n={n}")
    iu = np.triu_indices(V, 1)
    lo = np.array([np.array(r.R_lo)[iu] for r in res])
    hi = np.array([np.array(r.R_hi)[iu] for r in res])
    assert_rate(np.mean((lo <= 0) & (hi >= 0)), 0.95, len(res), f"R intervals, n={n}")
    # boundary truths (0): conservative by construction, only the lower side is asserted
    gnd = covers([r.intervals["gnd_l1"] for r in res], 0.0)
    assert_rate(gnd.mean(), 0.95, len(res), f"GND interval, n={n}", lower_only=True)
    nv = covers([r.intervals["nvat_offdiag"] for r in res], 0.0)
    assert_rate(nv.mean(), 0.95, len(res), f"nVAT interval, n={n}", lower_only=True)


def test_noise_floors_are_taken_out(null_results):
    n, res = null_results
    raw = np.mean([r.nvat_offdiag for r in res])
    assert raw == pytest.approx(1 / np.sqrt(n - 1), rel=0.15)  # the floor the issue measured
    assert np.mean([r.nvat_offdiag_null for r in res]) == pytest.approx(raw, rel=0.1)
    assert np.mean([r.nvat_offdiag_excess for r in res]) < 0.5 * raw
    # GND's floor: E|m_v| / |G| = sqrt(2 / pi) / sqrt(n) with unit noise and G = 1
    # (above that on average, since 1 / |G| is convex in the noisy gain)
    floor = np.sqrt(2 / np.pi / n)
    raw_gnd = np.mean([r.gnd_l1 for r in res])
    assert floor <= raw_gnd <= 1.35 * floor
    assert np.mean([r.gnd_l1_null for r in res]) == pytest.approx(raw_gnd, rel=0.15)
    assert np.mean([r.gnd_l1_bc for r in res]) < np.mean([r.gnd_l1 for r in res])


# --------------------------------------------------------------------------------------------------
# first order alone (cheap, so more datasets and more truths)


def first_order(D: np.ndarray, seed: int) -> list[M.FirstOrderInference]:
    n = D.shape[1]
    rng = np.random.default_rng(seed)
    out = []
    for d in D:
        W, _ = resample_weights(n, 300, rng)
        out.append(M.first_order_inference(d, T, W, ci=0.95, eps=1e-3))
    return out


@pytest.mark.parametrize("n", [14, 80])
def test_gain_test_and_interval_when_the_target_did_not_move(n):
    D = simulate(n, np.zeros(V), seed=100 + n, n_datasets=600)
    fo = first_order(D, seed=n)
    p = np.array([f.p[T] for f in fo])
    assert_rate(np.mean(p < 0.05), 0.05, len(fo), f"p_gain, n={n}")
    assert_rate(np.mean([covers(f.mean_ci[T], 0.0) for f in fo]), 0.95, len(fo), "gain CI")
    # the ratio is unbounded exactly when the gain's interval covers 0
    bounded = np.array([f.gain_bounded for f in fo])
    assert (bounded == ~np.array([covers(f.mean_ci[T], 0.0) for f in fo])).all()
    unbounded_tau = np.array([np.isinf(f.tau_ci[0]).all() for f in fo])
    assert (unbounded_tau == ~bounded).all()


@pytest.mark.parametrize("n", [14, 80])
def test_tau_and_gnd_intervals_cover_a_dense_drift(n):
    mu = np.full(V, 0.6)
    mu[T] = 1.0  # every other value moved by 0.6 of the target's gain: tau_v = GND = 0.6
    D = simulate(n, mu, seed=200 + n)
    fo = first_order(D, seed=n)
    others = [v for v in range(V) if v != T]
    tau = np.array([covers(f.tau_ci[others], 0.6) for f in fo])
    assert_rate(tau.mean(), 0.95, len(fo), f"Fieller tau, n={n}")
    d_z = np.array([covers(f.d_z_ci[others], 0.6) for f in fo])
    assert_rate(d_z.mean(), 0.95, len(fo), f"d_z, n={n}")
    gnd = np.array([covers(f.gnd_ci, 0.6) for f in fo])
    assert_rate(gnd.mean(), 0.95, len(fo), f"GND, n={n}")
    # a uniform ring: every value moved the same, so the unevenness test must hold its level
    assert_rate(np.mean([f.p_uneven < 0.05 for f in fo]), 0.05, len(fo), f"p_uneven, n={n}")


def test_sparse_drift_gnd_coverage_is_measured_not_nominal():
    # GND has no unbiased estimator; with 3 of 9 values drifting by ~1-5 SE its interval is known
    # to under-cover at n = 80 (0.87 measured). A regression guard, documented in the README.
    mu = np.zeros(V)
    mu[T], mu[[0, 1, 2]] = 1.0, [0.5, -0.3, 0.2]
    D = simulate(80, mu, seed=300)
    fo = first_order(D, seed=3)
    truth = np.abs(mu[[0, 1, 2]]).sum() / 9
    cov = np.mean([covers(f.gnd_ci, truth) for f in fo])
    assert cov >= 0.8


def test_bootstrap_t_beats_the_sign_flip_on_skewed_shifts():
    # The sign-flip test assumes symmetry: with centred exponential shifts its level is 0.09 at
    # 14 scenes. The bootstrap-t studentises and gets closer to 0.05 (0.066 in a 4,000-run check).
    rng = np.random.default_rng(7)
    n, runs = 14, 600
    D = rng.exponential(size=(runs, n, 2)) - 1.0
    D[..., 0] += 1.0  # target column
    fo_two = []
    for i, d in enumerate(D):
        W, _ = resample_weights(n, 500, np.random.default_rng(i))
        fo_two.append(M.first_order_inference(d, 0, W, ci=0.95, eps=1e-3).p[1])
    flip = [
        M.sign_flip_test(d, 0, n_permutations=2000, seed=i).p_values[1] for i, d in enumerate(D)
    ]
    rate_bt, rate_sf = np.mean(np.array(fo_two) < 0.05), np.mean(np.array(flip) < 0.05)
    assert rate_bt < rate_sf and rate_bt <= 0.085


# --------------------------------------------------------------------------------------------------
# power: planted structure is found


def test_planted_coupling_is_detected_at_80_scenes():
    rng = np.random.default_rng(11)
    n, runs, rho = 80, 200, 0.5
    Sig = np.eye(V)
    Sig[0, 1] = Sig[1, 0] = rho
    L = np.linalg.cholesky(Sig)
    truth = 6 / np.pi * np.arcsin(rho / 2)  # Spearman's rho of a bivariate normal with r = 0.5
    found, covered = [], []
    for _ in range(runs):
        d = rng.standard_normal((n, V)) @ L.T
        R = M.coupling(d)
        p = M.correlation_p_values(R, M.overlap(d), "spearman")
        p_holm = M.holm(p[np.triu_indices(V, 1)])
        found.append(p_holm[0] < 0.05)  # pair (0, 1) is the first upper-triangle entry
        lo, hi = M.fisher_z_interval(R, M.overlap(d), "spearman", 0.95)
        covered.append(lo[0, 1] <= truth <= hi[0, 1])
    assert np.mean(found) >= 0.8
    assert_rate(np.mean(covered), 0.95, runs, "Fisher-z interval of a planted coupling")


def test_subsample_scheme_rescaled_covers():
    # unscaled, the paper's 80 % subsample quantiles covered the true gain 58.5 % of the time at
    # n = 14; rescaled by sqrt(m / (n - m)) they estimate the full-sample spread
    n = 14
    mu = np.zeros(V)
    mu[T] = 1.0
    D = simulate(n, mu, seed=400)
    pre = np.zeros((n, V))
    cov = [
        covers(M.bootstrap(pre, pre + d, T, 400, seed=i, scheme="subsample").gain, 1.0)
        for i, d in enumerate(D)
    ]
    # a percentile interval with a normal-theory spread at n = 14: slightly below nominal
    lo, _ = band(0.95, len(D))
    assert lo - 0.03 <= np.mean(cov) <= 0.98
