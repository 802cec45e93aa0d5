"""`LikelihoodProbe` on the tiny offline model: its state matrices and validity table, its scores
under a prompt context, and its config checks."""

import numpy as np
import pytest

from vat.interventions import Prompting
from vat.probes import LikelihoodProbe, validity
from vat.probes.base import ProbeResult


def test_likelihood_probe_state_and_validity(tiny, held_small):
    model, tok = tiny
    res = LikelihoodProbe(progress=False).score(model, tok, held_small)
    assert len(res.items) == len(held_small) and len(res.units) == len(held_small) // 2
    scenes, names, S = res.state("value")
    assert S.shape == (3, 10) and len(scenes) == 3 and np.isfinite(S).all()
    # S is the pair margin averaged per micro-value then per value (one micro-value per value here)
    one = res.units.iloc[0]
    assert S[scenes.index(one.scene_id), names.index(one.value)] == pytest.approx(one.score)
    _, _, M = res.state("micro")
    assert M.shape == (3, 56) and np.isnan(M).sum() == 3 * 56 - 30
    v = validity(res)
    assert list(v.value) == list(names) and (v.n_pairs == 3).all()
    assert ((v.ci_low <= v.accuracy) & (v.accuracy <= v.ci_high)).all()


def test_likelihood_probe_fails_fast_on_bad_config():
    with pytest.raises(ValueError, match=r"must contain \{action\}"):
        LikelihoodProbe(action_template="{scenario}")


def test_prompt_changes_scores_and_results_round_trip(tiny, held_small, items, tmp_path):
    model, tok = tiny
    probe = LikelihoodProbe(progress=False)
    pre = probe.score(model, tok, held_small)
    post = probe.score(model, tok, held_small, Prompting(shots=2).context(items, "benevolence", 2))
    assert not np.allclose(pre.units.score, post.units.score)
    again = ProbeResult.load(pre.save(tmp_path / "r"))
    assert (
        again.items.equals(pre.items) and again.units.equals(pre.units) and again.meta == pre.meta
    )
