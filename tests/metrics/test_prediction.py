"""The prediction test (`vat.metrics.prediction`): hand-computed statistics and p-values, the
bundled Feldman (2021) predictions and their loader, the verdicts, and calibration by simulation
(false-positive rate under no planted pattern, power against a planted one)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vat.metrics.prediction import (
    VERDICTS,
    PredictionError,
    agreement,
    circle_prediction,
    load_predictions,
    min_attainable_p,
    prediction_test,
    prediction_verdict,
)
from vat.taxonomy import load_taxonomy

SCHWARTZ = load_taxonomy("schwartz")
MFT = load_taxonomy("mft")
FELDMAN = load_predictions()
NAN = float("nan")
W6 = np.array([3.0, 1.0, -2.0, 0.5, -1.0, 2.5])  # six distinct weights: 720 distinct relabelings


# --------------------------------------------------------------------------------------------------
# the statistic and its exact null, by hand


def test_centred_cosine_is_pearson_and_ignores_a_common_shift():
    y = np.array([0.3, -0.1, 0.7, 0.0, 0.2, -0.4])
    r = prediction_test(y, W6, rng=0)
    assert r.statistic == pytest.approx(np.corrcoef(y, W6)[0, 1], abs=1e-12)
    shifted = prediction_test(y + 10.0, W6, rng=0)
    assert shifted.statistic == pytest.approx(r.statistic, abs=1e-12)
    assert shifted.p_value == r.p_value
    # the uncentred cosine of the shifted profile would call this agreement: it is ~0.33 here
    assert np.dot(y + 10, W6) / np.linalg.norm(y + 10) / np.linalg.norm(W6) > 0.3


def test_exact_p_by_enumeration():
    y = np.array([0.3, -0.1, 0.7, 0.0, 0.2, -0.4])
    r = prediction_test(y, W6, rng=0)
    assert r.exact and r.n_perm == 720 and r.n_values == 6
    # brute force over all 720 relabelings of y
    import itertools

    obs = np.corrcoef(y, W6)[0, 1]
    null = [np.corrcoef(y[list(p)], W6)[0, 1] for p in itertools.permutations(range(6))]
    assert r.p_value == pytest.approx(np.mean(np.array(null) >= obs - 1e-12))
    # the profile equal to the prediction: the smallest attainable p, 1 / 6!
    best = prediction_test(W6, W6, rng=0)
    assert best.statistic == pytest.approx(1.0)
    assert best.p_value == pytest.approx(1 / 720) == best.min_p


def test_spearman_is_rank_correlation():
    y = np.array([0.3, -0.1, 0.7, 0.0, 0.2, 5.0])
    r = prediction_test(y, W6, method="spearman", rng=0)
    assert r.statistic == pytest.approx(stats.spearmanr(y, W6).statistic, abs=1e-12)
    obs, null = agreement(
        y[None], W6, "spearman", np.array([[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]])
    )
    assert null[0, 0] == pytest.approx(obs[0])
    assert null[0, 1] == pytest.approx(stats.spearmanr(y[::-1], W6).statistic)


def test_monte_carlo_beyond_n_perm_and_min_attainable_p():
    rng = np.random.default_rng(1)
    y, w = rng.standard_normal(10), rng.standard_normal(10)
    r = prediction_test(y, w, n_perm=999, rng=0)
    assert not r.exact and r.n_perm == 999 and r.p_value >= 1 / 1000
    assert min_attainable_p(W6) == pytest.approx(1 / 720)
    assert min_attainable_p([1, 1, 0, 0, 0, 0]) == pytest.approx(1 / 15)
    assert min_attainable_p({"a": 1, "b": 2, "c": 2}) == pytest.approx(1 / 3)


def test_mapping_inputs_target_and_nan_dropped():
    w = {"a": 1.0, "b": -1.0, "c": 0.5, "d": 0.0, "t": 2.0}
    obs = {"a": 0.4, "b": -0.3, "c": 0.2, "d": NAN, "t": 9.0, "extra": 1.0}
    r = prediction_test(obs, w, target="t", rng=0)
    assert r.values == ("a", "b", "c") and r.n_values == 3 and r.n_perm == 6
    arr = prediction_test([0.4, -0.3, 0.2, NAN, 9.0], w, names=list("abcdt"), target="t", rng=0)
    assert arr.statistic == r.statistic
    with pytest.raises(ValueError, match="lacks the predicted values"):
        prediction_test({"a": 1.0}, w)
    with pytest.raises(ValueError, match="needs `names`"):
        prediction_test([1.0, 2.0], w)
    with pytest.raises(ValueError, match="entries"):
        prediction_test([1.0, 2.0], [1.0, 2.0, 3.0])


def test_untestable_is_nan_not_an_exception():
    const = prediction_test(np.full(6, 0.3), W6, rng=0)  # a pure common shift
    assert math.isnan(const.statistic) and math.isnan(const.p_value)
    assert const.verdict == "not testable"
    assert math.isnan(prediction_test([1.0, 2.0], [1.0, -1.0]).p_value)  # two values
    assert math.isnan(prediction_test([1.0, 2.0, 3.0], [1.0, 1.0, 1.0]).p_value)  # flat weights


def test_placebo_net_statistic():
    y = np.array([0.3, -0.1, 0.7, 0.0, 0.2, -0.4])
    plc = np.array([0.1, 0.0, -0.2, 0.3, 0.0, 0.1])
    r = prediction_test(y, W6, placebo_profile=plc, rng=0)
    net = prediction_test(y - plc, W6, rng=0)
    assert r.statistic_net == pytest.approx(net.statistic) and r.p_value_net == net.p_value
    assert r.basis == "net of placebo"
    # the verdict reads the net p: a pattern the placebo shows too is not the target's
    r2 = prediction_test(W6 + 1.0, W6, placebo_profile=W6, rng=0, structure_p=0.5)
    assert r2.p_value == pytest.approx(1 / 720) and math.isnan(r2.p_value_net)
    assert r2.verdict == "not testable"


# --------------------------------------------------------------------------------------------------
# verdicts


def test_each_verdict():
    good, bad = W6 + 0.01 * np.arange(6), -W6
    assert prediction_test(good, W6, rng=0, gain_ci=(0.1, 0.3)).verdict == "structured as predicted"
    assert (prediction_test(bad, W6, rng=0, gain_ci=(0.1, 0.3), structure_p=0.001).verdict
            == "structured, but not as predicted")  # fmt: skip
    assert (prediction_test(bad, W6, rng=0, gain_ci=(0.1, 0.3), structure_p=0.4).verdict
            == "not distinguishable from random")  # fmt: skip
    assert (prediction_test(good, W6, rng=0, gain_ci=(-0.1, 0.3)).verdict
            == "gain not above noise: nothing can be read")  # fmt: skip
    assert prediction_verdict(0.01, None, (NAN, 0.3)) == VERDICTS[3]  # unknown end covers 0
    assert prediction_verdict(0.01, None, (-0.5, -0.1)) == VERDICTS[0]  # a negative gain is a gain
    assert prediction_verdict(NAN, 0.01) == VERDICTS[1]
    assert prediction_verdict(0.2, NAN) == VERDICTS[2]
    assert prediction_verdict(0.04, 0.5, alpha=0.01) == VERDICTS[2]


# --------------------------------------------------------------------------------------------------
# the bundled predictions


def test_feldman_covers_every_value_and_foundation():
    fwd = {t: r for t, r in FELDMAN.items() if t in SCHWARTZ.value_names}
    rev = {t: r for t, r in FELDMAN.items() if t in MFT.value_names}
    assert set(fwd) == set(SCHWARTZ.value_names)
    assert all(set(r) == set(MFT.value_names) for r in fwd.values())
    assert set(rev) == set(MFT.value_names) - {"liberty"}  # liberty: not in Feldman's MFQ
    assert all(set(r) == set(SCHWARTZ.value_names) for r in rev.values())
    assert all(r["liberty"] == 0 for r in fwd.values())


def test_feldman_numbers_are_the_sinusoid_and_its_signs():
    peak = {"care": 300, "fairness": 300, "loyalty": 220, "authority": 220, "sanctity": 220}
    signs = load_predictions(form="signs")
    for t, row in FELDMAN.items():
        for v, w in row.items():
            f, s = (v, t) if t in SCHWARTZ.value_names else (t, v)
            if f == "liberty":
                continue
            expect = round(math.cos(math.radians(SCHWARTZ.structure.angle(s) - peak[f])), 2)
            assert w == pytest.approx(expect, abs=1e-9), (t, v)
            assert signs[t][v] == (np.sign(w) if abs(w) > 0.5 else 0), (t, v)
    # the doc's statements
    assert signs["benevolence"]["care"] == signs["universalism"]["fairness"] == 1
    assert all(signs[t][f] == 1 for t in ("security", "conformity", "tradition")
               for f in ("loyalty", "authority", "sanctity"))  # fmt: skip
    assert signs["power"]["care"] == signs["achievement"]["fairness"] == -1
    assert signs["self_direction"]["sanctity"] == signs["stimulation"]["loyalty"] == -1


def test_sign_predictions_over_six_foundations_cannot_reach_005():
    signs = load_predictions(form="signs")
    fwd = [t for t in signs if t in SCHWARTZ.value_names]
    assert min(min_attainable_p(signs[t]) for t in fwd) == pytest.approx(0.05)
    assert max(min_attainable_p(FELDMAN[t]) for t in fwd if t != "hedonism") == pytest.approx(
        1 / 60
    )


def _write(tmp_path, text):
    p = tmp_path / "pred.yaml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: [1", "not valid YAML"),
        ("- 1\n", "mapping at the top level"),
        ("name: x\n", "no section"),
        ("fwd: {target_taxonomy: schwartz, measured_taxonomy: mft}\n", "fwd: expected a mapping with a 'weights'"),
        ("fwd: {target_taxonomy: nope, measured_taxonomy: mft, weights: {}}\n", "target_taxonomy"),
        ("fwd: {target_taxonomy: schwartz, measured_taxonomy: mft, weights: {kindness: {care: 1}}}\n",
         r"fwd.weights.kindness: 'kindness' is not a schwartz value"),
        ("fwd: {target_taxonomy: schwartz, measured_taxonomy: mft, weights: {power: {purity: 1}}}\n",
         r"fwd.weights.power: \['purity'\] are not mft values"),
        ("fwd: {target_taxonomy: schwartz, measured_taxonomy: mft, weights: {power: {care: x}}}\n",
         r"fwd.weights.power.care: expected a finite number"),
        ("fwd: {target_taxonomy: schwartz, measured_taxonomy: mft, weights: {power: []}}\n",
         "fwd.weights.power: expected a mapping"),
    ],
)  # fmt: skip
def test_loader_errors_name_file_and_key(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(PredictionError, match=match) as e:
        load_predictions(path=path)
    assert path in str(e.value)


def test_loader_sign_form_and_missing_file(tmp_path):
    path = _write(tmp_path, "f: {target_taxonomy: schwartz, measured_taxonomy: mft, "
                            "signs: {power: {care: 2}}}\n")  # fmt: skip
    with pytest.raises(PredictionError, match=r"f.signs.power.care: expected -1, 0 or 1"):
        load_predictions(path=path, form="signs")
    with pytest.raises(PredictionError, match=r"no predictions file; bundled: .*feldman2021"):
        load_predictions("nope")
    with pytest.raises(ValueError, match="form"):
        load_predictions(form="ranks")


def test_circle_prediction():
    w = circle_prediction(SCHWARTZ, "Benevolence")
    assert "benevolence" not in w and len(w) == 9
    assert w["universalism"] == pytest.approx(math.cos(math.radians(40)))
    assert w["conformity"] == w["tradition"] == w["universalism"]  # ties are exact
    assert w["achievement"] == w["hedonism"] == pytest.approx(math.cos(math.radians(160)))
    with pytest.raises(ValueError, match="declares no circle"):
        circle_prediction(MFT, "care")


# --------------------------------------------------------------------------------------------------
# calibration by simulation


def _profiles(rng, n_sims, mu, n_scenes=14, sd=1.0, common=0.0):
    """Mean shift profiles of simulated designs: scenes x values normal noise around mu."""
    D = common + mu + sd * rng.standard_normal((n_sims, n_scenes, mu.size))
    return D.mean(axis=1)


@pytest.mark.parametrize(
    ("weights", "n_perm", "size"),
    [(FELDMAN["benevolence"], 720, 2 / 60), (circle_prediction(SCHWARTZ, "security"), 199, 0.05),
     (W6, 720, 35 / 720)],
    ids=["feldman-6-exact", "circle-9-montecarlo", "distinct-6-exact"],
)  # fmt: skip
def test_false_positive_rate_under_no_pattern(weights, n_perm, size):
    """400 simulated designs (14 scenes, a common shift of 0.5 SD on every value, no pattern),
    plain and net of a placebo arm: the rejection rate at 0.05 is the test's exact size within
    binomial error (two-sided binomial p > 0.001), and in [0.02, 0.09] where the size is nominal.
    The exact size is below 0.05 where the weights tie: Feldman's benevolence row has 60 distinct
    arrangements, so p < 0.05 only at 1/60 and 2/60 (size 0.033); six distinct weights: 35/720.
    Measured (plain / net): 0.028 / 0.020 (Feldman), 0.030 / 0.035 (circle), 0.038 / 0.055."""
    rng = np.random.default_rng(7)
    w = np.array(list(weights.values()) if isinstance(weights, dict) else weights)
    Y = _profiles(rng, 400, np.zeros(w.size), common=0.5)
    P = _profiles(rng, 400, np.zeros(w.size))
    rej = [prediction_test(y, w, n_perm=n_perm, rng=i).p_value < 0.05 for i, y in enumerate(Y)]
    net = [prediction_test(y, w, n_perm=n_perm, rng=i, placebo_profile=p).p_value_net < 0.05
           for i, (y, p) in enumerate(zip(Y, P, strict=True))]  # fmt: skip
    for r in (rej, net):
        assert stats.binomtest(int(np.sum(r)), len(r), size).pvalue > 0.001, np.mean(r)
        if size > 0.045:
            assert 0.02 <= np.mean(r) <= 0.09, np.mean(r)


def test_common_shift_is_not_as_predicted():
    """Every value moved up by 2.4 scene SD (9 standard errors at 14 scenes), no pattern: the
    uncentred cosine with Feldman's benevolence row would read agreement (mean 0.86), the test
    says "structured as predicted" in 5 of 300 designs (0.017, its size here is 0.033)."""
    rng = np.random.default_rng(3)
    w = np.array(list(FELDMAN["benevolence"].values()))
    Y = _profiles(rng, 300, np.zeros(6), common=2.4)
    assert np.mean(Y @ w / np.linalg.norm(Y, axis=1) / np.linalg.norm(w)) > 0.8
    verdicts = [prediction_test(y, w, rng=0, gain_ci=(0.1, 0.2)).verdict for y in Y]
    assert np.mean([v == "structured as predicted" for v in verdicts]) <= 0.09


def test_detects_a_planted_pattern():
    """The predicted pattern planted with an SD across values of 0.5 scene SD (1.9 standard errors
    at 14 scenes) on top of a common shift, 200 designs each: power 0.94 with Feldman's
    benevolence row (exact, 720 relabelings), 1.0 with the circle's profile for power (Monte
    Carlo, 199); at 0.3 scene SD: 0.69 and 0.87."""
    rng = np.random.default_rng(11)
    cases = [(FELDMAN["benevolence"], 720), (circle_prediction(SCHWARTZ, "power"), 199)]
    for weights, n_perm in cases:
        w = np.array(list(weights.values()))
        pattern = (w - w.mean()) / w.std()
        Y = _profiles(rng, 200, 0.5 * pattern, common=0.3)
        rej = [prediction_test(y, w, n_perm=n_perm, rng=i).p_value < 0.05 for i, y in enumerate(Y)]
        assert np.mean(rej) >= 0.85, np.mean(rej)
