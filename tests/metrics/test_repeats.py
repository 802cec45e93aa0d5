"""Repeats and controls: the two-level bootstrap, an arm over seeds, the tax net of a placebo."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from tests.schwartz import SCHWARTZ
from vat.metrics.repeats import net_of_placebo, stack_runs, summarize_arm

V = [f"v{i}" for i in range(10)]


def _band(p: float, n: int) -> tuple[float, float]:
    """99.9 % binomial band for a rate p over n simulated datasets."""
    lo, hi = stats.binom.ppf([0.0005, 0.9995], n, p)
    return lo / n, hi / n


def _arm(rng, S, X, sa, sb=0.1, se=0.05, mu=0.0, b=None):
    """D[s, x, v] = mu + a_s + b_x + e: planted seed (a), scene (b) and residual (e) variance."""
    if b is None:
        b = rng.normal(0, sb, (1, X, 10))
    return mu + rng.normal(0, sa, (S, 1, 10)) + b + rng.normal(0, se, (S, X, 10)), b


def test_point_estimates_and_se_by_hand():
    # 2 seeds x 3 scenes, one value column of interest (target v0), others zero
    D = np.zeros((2, 3, 10))
    D[0, :, 0] = [1.0, 2.0, 3.0]  # seed 0: mean 2
    D[1, :, 0] = [2.0, 4.0, np.nan]  # seed 1: mean 3 (scene 2 missing)
    r = summarize_arm(D, V, "v0", n_boot=200)
    assert r.gain.value == pytest.approx(2.5)  # mean of per-seed means
    assert r.per_seed_gain == (2.0, 3.0) and r.sd_gain == pytest.approx(np.sqrt(0.5))
    # SE^2 = Var_x(per-scene mean over seeds) / n_x + Var_s(per-seed mean) / n_s
    per_scene = np.array([1.5, 3.0, 3.0])
    se2 = per_scene.var(ddof=1) / 3 + np.var([2.0, 3.0], ddof=1) / 2
    assert r.gain.se == pytest.approx(np.sqrt(se2))
    assert r.gain.lo < 2.5 < r.gain.hi and r.n_seeds == 2 and r.n_scenes == 3
    assert np.isnan(r.shift["v1"].p) or r.shift["v1"].value == 0.0


def test_one_seed_is_the_scene_bootstrap_t():
    rng = np.random.default_rng(0)
    D, _ = _arm(rng, 1, 20, 0.0)
    r = summarize_arm(D, V, "v0", n_boot=500)
    x = D[0, :, 3]
    assert r.shift["v3"].value == pytest.approx(x.mean())
    assert r.shift["v3"].se == pytest.approx(x.std(ddof=1) / np.sqrt(20))
    assert np.isnan(r.sd_gain)


@pytest.mark.slow
def test_two_level_bootstrap_recovers_planted_seed_variance():
    """S=8 seeds x 30 scenes with seed SD 0.1: the SE matches the estimator's true spread, the
    interval covers, the between-seed SD is recovered; a scene-only interval (seeds pooled)
    under-covers badly, which is why the seed level is there."""
    rng = np.random.default_rng(1)
    S, X, sa, sb, se = 8, 30, 0.1, 0.1, 0.05
    n, cover, cover_pooled, ses, sd2 = 200, 0, 0, [], []
    for i in range(n):
        D, _ = _arm(rng, S, X, sa, sb, se)
        r = summarize_arm(D, V, "v0", n_boot=400, seed=i)
        e = r.shift["v1"]
        cover += e.lo <= 0 <= e.hi
        ses.append(e.se)
        sd2.append(r.sd_gain**2)
        pooled = summarize_arm(D.mean(0, keepdims=True), V, "v0", n_boot=400, seed=i)
        cover_pooled += pooled.shift["v1"].lo <= 0 <= pooled.shift["v1"].hi
    true_se = np.sqrt(sa**2 / S + sb**2 / X + se**2 / (S * X))
    assert 0.85 < np.mean(ses) / true_se < 1.2
    lo, hi = _band(0.95, n)
    assert lo <= cover / n <= hi
    assert cover_pooled / n < 0.8
    # per-seed gains differ by a_s + mean_x e_sx (the shared scene effects cancel)
    assert np.mean(sd2) == pytest.approx(sa**2 + se**2 / X, rel=0.2)


@pytest.mark.slow
def test_net_of_placebo_false_positives_and_power():
    """3 seeds per arm on 14 shared scenes (the controls preset's shape): with no net effect
    p < 0.05 at most at the nominal rate; a planted net shift of 0.25 (about 6 SE) is found."""
    rng = np.random.default_rng(2)
    n, rej, cover, found = 300, 0, 0, 0
    for i in range(n):
        A, b = _arm(rng, 3, 14, 0.05)
        B, _ = _arm(rng, 3, 14, 0.05, b=b)
        r = net_of_placebo(A, B, V, "v0", n_boot=400, seed=i)
        rej += r.net["v1"].p < 0.05
        cover += r.net["v1"].lo <= 0 <= r.net["v1"].hi
        if i < 100:
            A2 = A.copy()
            A2[:, :, 2] += 0.25
            found += net_of_placebo(A2, B, V, "v0", n_boot=400, seed=i).net["v2"].p < 0.05
    assert rej / n <= _band(0.05, n)[1]
    assert cover / n >= _band(0.95, n)[0]
    assert found / 100 >= 0.8


def test_net_of_placebo_structure():
    rng = np.random.default_rng(3)
    A, b = _arm(rng, 3, 14, 0.05, mu=0.0)
    A[:, :, 0] += 0.5  # the real arm moves its target
    B, _ = _arm(rng, 3, 14, 0.05, b=b)
    r = net_of_placebo(A, B, V, "v0", n_boot=300)
    assert r.gain.value == pytest.approx(A[:, :, 0].mean() - B[:, :, 0].mean())
    assert r.gain.p < 0.05 and r.gain.lo > 0
    assert set(r.p_holm) == set(V[1:])
    raw_p = np.array([r.net[v].p for v in V[1:]])
    assert all(r.p_holm[v] >= r.net[v].p for v in V[1:]) and max(r.p_holm.values()) <= 1
    assert min(r.p_holm.values()) == pytest.approx(min(1.0, raw_p.min() * 9))
    gnd = np.mean([abs(r.net[v].value) for v in V[1:]]) / abs(r.gain.value)  # mean, as gnd()
    assert r.gnd["raw"] == pytest.approx(gnd)
    assert r.real.n_seeds == 3 and r.placebo.n_seeds == 3
    d = r.to_dict()
    assert d["net"]["v0"]["value"] == pytest.approx(r.gain.value)
    with pytest.raises(ValueError, match="same held-out scenes"):
        net_of_placebo(A, B[:, :10], V, "v0")
    with pytest.raises(ValueError, match="expected \\(seeds, scenes, values\\)"):
        net_of_placebo(A[0], B, V, "v0")


def test_stack_runs_aligns_scenes():
    D1 = np.arange(6.0).reshape(2, 3)
    D2 = np.arange(6.0, 12.0).reshape(2, 3)
    out, scenes, values = stack_runs([(["a", "b"], ["x", "y", "z"], D1),
                                      (["b", "c"], ["x", "y", "z"], D2)])  # fmt: skip
    assert scenes == ["a", "b", "c"] and values == ["x", "y", "z"]
    assert out.shape == (2, 3, 3)
    np.testing.assert_array_equal(out[0, 1], D1[1])
    np.testing.assert_array_equal(out[1, 1], D2[0])
    assert np.isnan(out[0, 2]).all() and np.isnan(out[1, 0]).all()
    with pytest.raises(ValueError, match="values"):
        stack_runs([(["a"], ["x"], np.zeros((1, 1))), (["a"], ["y"], np.zeros((1, 1)))])


def _target_arm(rng, t, S=2, X=30, drift=0.3, gain=1.0, sd=0.4):
    mu = np.full(10, drift)
    mu[t] = gain
    return mu + rng.normal(0, 0.05, (S, 1, 10)) + rng.normal(0, sd, (S, X, 10))


def test_aggregate_over_targets_point_estimates():
    from tests.schwartz import BASIC_VALUES as names
    from vat.metrics import compute_vat
    from vat.metrics.over_targets import aggregate_over_targets

    rng = np.random.default_rng(4)
    arms = [(names[t], _target_arm(rng, t)) for t in (0, 3, 7)]
    agg = aggregate_over_targets(arms, names, n_boot=300, n_permutations=300)
    per = []
    for name, D in arms:
        m = D.mean(axis=1).mean(axis=0)  # per-seed scene means, then over seeds
        t = names.index(name)
        per.append(np.abs(np.delete(m, t)).mean() / abs(m[t]))
    assert agg.gnd["raw"] == pytest.approx(np.mean(per))
    assert agg.gnd["lo"] <= agg.gnd["bc"] <= agg.gnd["hi"]
    assert agg.targets == (names[0], names[3], names[7])
    # each target's debiased nVAT is the single-run one on the seed-averaged shifts (own null draw)
    for name, D in arms:
        one = compute_vat(np.zeros(D.shape[1:]), D.mean(0), name, SCHWARTZ, names, n_bootstrap=0,
                          n_permutations=300)  # fmt: skip
        assert agg.per_target_nvat[name] == pytest.approx(one.nvat_offdiag_excess, abs=0.03)
    with pytest.raises(ValueError, match="at least 2 targets"):
        aggregate_over_targets(arms[:1], names)


@pytest.mark.slow
def test_aggregate_gnd_interval_covers_the_true_mean():
    from vat.metrics.over_targets import aggregate_over_targets

    rng = np.random.default_rng(5)
    true = 0.3 / 1.0  # every target: its 9 other values drift 0.3 per unit gain
    n, cover = 150, 0
    for i in range(n):
        arms = [(V[t], _target_arm(rng, t, X=40)) for t in (0, 4)]
        agg = aggregate_over_targets(arms, V, n_boot=300, n_permutations=50, seed=i)
        cover += agg.gnd["lo"] <= true <= agg.gnd["hi"]
    assert cover / n >= _band(0.95, n)[0]


def test_arm_gnd_is_the_single_run_gnd_with_one_seed():
    from vat.metrics import gnd

    rng = np.random.default_rng(6)
    D, _ = _arm(rng, 1, 20, 0.0, mu=0.2)
    D[:, :, 0] += 0.5
    r = summarize_arm(D, V, "v0", n_boot=200)
    assert r.gnd["raw"] == pytest.approx(gnd(D[0], 0).l1)


def test_p_value_and_interval_agree_about_zero():
    rng = np.random.default_rng(7)
    for i in range(40):
        D = rng.lognormal(0, 1, (3, 14, 10)) - np.exp(0.5) + rng.normal(0, 0.3)  # skewed shifts
        r = summarize_arm(D, V, "v0", n_boot=300, seed=i)
        for e in r.shift.values():
            if abs(e.p - 0.05) > 3 / 301:  # away from the border set by B's resolution
                assert (e.p < 0.05) == (not (e.lo <= 0 <= e.hi)), e
