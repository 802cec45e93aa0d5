"""Register balance: the features, the paired tests, the flag, and the bundled set passes."""

from __future__ import annotations

import pytest
from statsmodels.stats.contingency_tables import mcnemar

from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, load_items
from vat.data.register import features, has_negation, register_report


@pytest.mark.parametrize(
    ("text", "neg"),
    [
        ("I decline the offer and go home.", True),
        ("I don't go.", True),
        ("I don’t go.", True),  # typographic apostrophe
        ("I go to the market instead.", True),
        ("I stay out of the argument.", True),
        ("I knot the rope and notice the tide.", False),  # 'not' only inside words
        ("I nominate my sister for the committee.", False),
    ],
)
def test_negation_lexicon(text, neg):
    assert has_negation(text) is neg


def test_features_by_hand():
    f = features("I gladly refuse the bribe.")
    assert f == {"negation": 1.0, "words": 5.0, "positive": 1.0, "negative": 0.0}
    assert features("I grudgingly sign the form.")["negative"] == 1.0


def _pairs(n_neg_suppress: int, n: int = 40, extra_words: int = 0):
    """n pairs; the suppress side of the first `n_neg_suppress` pairs is a refusal."""
    pairs = []
    for i in range(n):
        e = (
            f"I help my neighbour number {i} carry the shopping up the stairs"
            + " today" * extra_words
        )
        s = (f"I refuse to help neighbour {i} with the shopping on the stairs"
             if i < n_neg_suppress else f"I watch the television news while neighbour number {i} climbs the stairs")  # fmt: skip
        pairs.append((e, s))
    return pairs


def test_flags_a_register_difference_and_matches_mcnemar():
    rep = register_report(_pairs(30))
    neg = rep.check("negation")
    assert (neg.express, neg.suppress) == (0.0, 0.75)
    # 30 discordant pairs, all one way: exact McNemar = binomial test, p = 2 * 0.5**30
    assert neg.p == pytest.approx(mcnemar([[0, 0], [30, 10]], exact=True).pvalue)
    assert neg.p == pytest.approx(2 * 0.5**30)
    assert neg.flagged and "negation" in rep.flagged
    assert rep.counts == {"express": 0, "suppress": 30}
    assert "WARNING" in rep.summary()


def test_balanced_pairs_are_not_flagged():
    rep = register_report(_pairs(0))
    assert rep.flagged == []
    assert "WARNING" not in rep.summary()


def test_small_but_significant_difference_is_not_material():
    # 8 of 400 pairs differ one way: p ~ 0.008 < 0.01 but a share gap of 0.02 < 0.05
    rep = register_report(_pairs(8, n=400))
    neg = rep.check("negation")
    assert neg.p < 0.01 and abs(neg.gap) == pytest.approx(0.02)
    assert not neg.flagged


def test_length_difference_flagged():
    rep = register_report(_pairs(0, extra_words=2))
    w = rep.check("words")
    assert w.gap > 0.5 and w.flagged


def test_too_few_pairs_reports_without_testing():
    rep = register_report(_pairs(5, n=6))
    assert all(c.p != c.p for c in rep.checks)  # NaN: not tested
    assert rep.flagged == []


def test_bundled_set_is_register_balanced():
    """The bundled set (revised December 2026): no feature differs between polarities."""
    rep = load_items(BUNDLED, SCHWARTZ).register()
    assert rep.n_pairs == 480
    assert rep.flagged == [], rep.summary()
    neg = rep.check("negation")
    assert abs(neg.gap) < 0.03 and neg.p > 0.05
    assert abs(rep.check("words").gap) < 0.25
    # and the loader's description carries the check
    assert "register of 480 express/suppress pairs" in load_items(BUNDLED, SCHWARTZ).describe()
