"""`JudgmentProbe` on the tiny offline model: ratings on its scale from both orders, and its config
checks."""

import numpy as np
import pytest

from vat.probes import JudgmentProbe, validity


def test_judgment_probe_ratings(tiny, held_small):
    model, tok = tiny
    probe = JudgmentProbe(progress=False)
    res = probe.score(model, tok, held_small)
    r = res.items.rating
    assert ((r >= 1) & (r <= 5)).all()
    np.testing.assert_allclose(r, (res.items.rating_forward + res.items.rating_reverse) / 2)
    assert ((res.items.option_mass > 0) & (res.items.option_mass < 1)).all()
    # score = sign * (rating - 3)
    sign = np.where(res.items.polarity == "express", 1, -1)
    np.testing.assert_allclose(res.units.score, sign * (r - 3))
    assert "option_mass" in validity(res)


def test_judgment_probe_fails_fast_on_bad_config():
    with pytest.raises(ValueError, match=r"probe.k=1: a judgment scale needs 2 to 9 points"):
        JudgmentProbe(k=1)
    with pytest.raises(ValueError, match=r"probe.orders"):
        JudgmentProbe(orders=["sideways"])
