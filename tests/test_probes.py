"""The scoring engine and both probes, on the tiny offline model."""

import numpy as np
import pytest
import torch

from vat.data import ItemSet
from vat.forward import encode_pair
from vat.interventions import Prompting
from vat.models import ModelSpec, load
from vat.probes import JudgmentProbe, LikelihoodProbe, Request, Scorer, validity
from vat.probes.base import ProbeResult
from vat.probes.scoring.plan import groups


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)


@pytest.fixture(scope="module")
def held_small(items):
    held = items.heldout()
    scenes = held.scenes()[:3]
    return ItemSet(tuple(it for it in held if it.scene_id in scenes))


def _requests(tok, held):
    reqs = []
    for it in held:
        c, x = encode_pair(
            tok, f"Scenario: {it.scenario}\nCare about {it.micro_value}.\nAction:", " " + it.action
        )
        reqs.append(Request(tuple(c), tuple(x), group=it.scene_id))
    return reqs


def _reference(model, req, options):
    """One sequence, no padding, no cache: the definition the engine must match."""
    ids = torch.tensor([list(req.context) + list(req.continuation)])
    with torch.no_grad():
        lp = model(ids).logits[0].float().log_softmax(-1)
    c = len(req.context)
    total = sum(lp[p - 1, ids[0, p]].item() for p in range(c, ids.shape[1]))
    return total, lp[-1, options].numpy()


def test_engine_matches_reference_and_is_batch_invariant(tiny, held_small):
    model, tok = tiny
    reqs = _requests(tok, held_small)[:24]
    options = [5, 17, 99]
    runs = {}
    for bs in (1, 3, 16):
        for pad in ("right", "left"):
            for reuse in (False, True):
                s = Scorer(
                    model, batch_size=bs, padding_side=pad, reuse_prefix=reuse, progress=False
                )
                runs[bs, pad, reuse] = s.score(reqs, options)
    base = runs[1, "right", False]
    for key, sc in runs.items():
        np.testing.assert_allclose(sc.logprob, base.logprob, atol=1e-5, rtol=0, err_msg=str(key))
        np.testing.assert_allclose(
            sc.option_logprobs, base.option_logprobs, atol=1e-5, rtol=0, err_msg=str(key)
        )
    for i in (0, 7, 23):
        total, opt = _reference(model, reqs[i], options)
        assert base.logprob[i] == pytest.approx(total, abs=1e-4)
        np.testing.assert_allclose(base.option_logprobs[i], opt, atol=1e-5)
    assert (base.n_tokens == [len(r.continuation) for r in reqs]).all()


def test_prefix_reuse_actually_groups(tiny, held_small):
    _, tok = tiny
    reqs = _requests(tok, held_small)
    fulls = [list(r.context) + list(r.continuation) for r in reqs]
    plan = groups(reqs, fulls, reuse_prefix=True, min_prefix=8)
    assert len(plan) == 3 and all(k > 20 for k, _ in plan)  # one cached scenario prefix per scene
    plan = groups(reqs, fulls, reuse_prefix=False, min_prefix=8)
    assert [k for k, _ in plan] == [0]
    lengths = [len(reqs[i].context) + len(reqs[i].continuation) for i in plan[0][1]]
    assert lengths == sorted(lengths, reverse=True)  # longest first


def test_encode_pair_moves_trailing_space_like_lm_eval(tiny):
    _, tok = tiny
    c1, x1 = encode_pair(tok, "What I do: ", "I help.")
    c2, x2 = encode_pair(tok, "What I do:", " I help.")
    assert (c1, x1) == (c2, x2)


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
    with pytest.raises(ValueError, match=r"must contain \{action\}"):
        LikelihoodProbe(action_template="{scenario}")


def test_prompting_uses_train_split_only_and_nests(items):
    p = Prompting(shots=[2, 4, 8], seed=1)
    held_scenes = set(items.heldout().scenes())
    ctx8 = p.context(items, "security", 8)
    ctx2 = p.context(items, "security", 2)
    assert ctx8.examples[:2] == ctx2.examples and len(ctx8.examples) == 8
    train = {(it.scenario, it.action) for it in items.train("security") if it.polarity == "express"}
    assert all((s, a) in train for s, a, _ in ctx8.examples)
    assert not {s for s, _, _ in ctx8.examples} & {
        it.scenario for it in items if it.scene_id in held_scenes
    }
    assert "Security" in ctx8.system
    with pytest.raises(ValueError, match="only"):
        p.context(items, "security", 500)


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


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_batches_equal_plain_scoring(tiny, held_small, attn):
    """Packed scoring (each distinct context once, its requests' continuations after it, a tree
    attention mask) gives the plain padded scores, under both attention implementations that take a
    custom mask; several requests share each context here, as the judgment prompts do."""
    model, tok = tiny
    reqs = []
    for it in held_small:  # context = the scene + the micro-value: 2 requests (a pair) per context
        c, x = encode_pair(tok, f"Scenario: {it.scenario}\nCare about {it.micro_value}.\nAction:",
                           " " + it.action)  # fmt: skip
        reqs.append(Request(tuple(c), tuple(x), group=it.scene_id))
    options = [5, 17, 99]
    cfg = model.config
    before = cfg._attn_implementation
    try:
        cfg._attn_implementation = attn
        packed = Scorer(model, batch_size=16, reuse_prefix=True, progress=False)
        fulls = [list(r.context) + list(r.continuation) for r in reqs]
        units = packed._units(reqs, fulls, fulls, [len(r.context) for r in reqs])
        assert all(u.packed for u in units) and len(units) == 3  # one packed unit per scene
        plain = Scorer(model, batch_size=16, reuse_prefix=False, progress=False)
        # with option tokens (read after the last token) and without (the last token not run)
        got, want = packed.score(reqs, options), plain.score(reqs, options)
        got_lp, want_lp = packed.score(reqs), plain.score(reqs)
    finally:
        cfg._attn_implementation = before
    np.testing.assert_allclose(got.logprob, want.logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got.option_logprobs, want.option_logprobs, atol=1e-5, rtol=0)
    assert (got.n_tokens == want.n_tokens).all()
    np.testing.assert_allclose(got_lp.logprob, want.logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(want_lp.logprob, want.logprob, atol=1e-5, rtol=0)
    assert got_lp.option_logprobs is None and (got_lp.n_tokens == want.n_tokens).all()


def test_packed_scoring_of_one_token_continuations(tiny):
    """Continuations of one token (their only token is not run when no option is read) and of
    several, several per context, three contexts per cached prefix: packed == one at a time."""
    model, _ = tiny
    rng = np.random.default_rng(0)
    reqs = []
    for g in range(3):
        pre = [int(x) for x in rng.integers(5, 200, 12)]
        for c in range(3):
            ctx = tuple(pre + [int(x) for x in rng.integers(5, 200, 1 + c)])
            for j in range(4):
                cont = tuple(int(x) for x in rng.integers(5, 200, 1 + (j % 2) * 3))
                reqs.append(Request(ctx, cont, group=g))
    got = Scorer(model, batch_size=16, reuse_prefix=True, progress=False).score(reqs)
    want = Scorer(model, batch_size=1, reuse_prefix=False, progress=False).score(reqs)
    np.testing.assert_allclose(got.logprob, want.logprob, atol=1e-5, rtol=0)


def test_packed_scoring_without_boolean_logits_to_keep(tiny, held_small, monkeypatch):
    """A transformers that computes logits at every position (no boolean ``logits_to_keep``):
    the packed path reads them by (row, column) and gives the same scores."""
    from vat.probes.scoring import hf_compat

    model, tok = tiny
    reqs = _requests(tok, held_small)
    options = [5, 17, 99]
    want = Scorer(model, batch_size=16, reuse_prefix=False, progress=False)
    want_opt, want_lp = want.score(reqs, options), want.score(reqs)
    monkeypatch.setattr(hf_compat, "bool_logits_to_keep", lambda: False)
    got = Scorer(model, batch_size=16, reuse_prefix=True, progress=False)
    got_opt, got_lp = got.score(reqs, options), got.score(reqs)
    np.testing.assert_allclose(got_opt.logprob, want_opt.logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_opt.option_logprobs, want_opt.option_logprobs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_lp.logprob, want_lp.logprob, atol=1e-5, rtol=0)
