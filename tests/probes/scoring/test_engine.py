"""`vat.probes.scoring`: the `Scorer` on the tiny offline model matches one plain forward per
request, whatever the batch size, padding side, prefix reuse, packing or attention implementation."""

import numpy as np
import pytest
import torch

from vat.forward import encode_pair
from vat.probes import Request, Scorer


def _reference(model, req, options):
    """One sequence, no padding, no cache: the definition the engine must match."""
    ids = torch.tensor([list(req.context) + list(req.continuation)])
    with torch.no_grad():
        lp = model(ids).logits[0].float().log_softmax(-1)
    c = len(req.context)
    total = sum(lp[p - 1, ids[0, p]].item() for p in range(c, ids.shape[1]))
    return total, lp[-1, options].numpy()


def test_engine_matches_reference_and_is_batch_invariant(tiny, held_requests):
    model, _ = tiny
    reqs = held_requests[:24]
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


def test_packed_scoring_without_boolean_logits_to_keep(tiny, held_requests, monkeypatch):
    """A transformers that computes logits at every position (no boolean ``logits_to_keep``):
    the packed path reads them by (row, column) and gives the same scores."""
    from vat.probes.scoring import hf_compat

    model, _ = tiny
    reqs = held_requests
    options = [5, 17, 99]
    want = Scorer(model, batch_size=16, reuse_prefix=False, progress=False)
    want_opt, want_lp = want.score(reqs, options), want.score(reqs)
    monkeypatch.setattr(hf_compat, "bool_logits_to_keep", lambda: False)
    got = Scorer(model, batch_size=16, reuse_prefix=True, progress=False)
    got_opt, got_lp = got.score(reqs, options), got.score(reqs)
    np.testing.assert_allclose(got_opt.logprob, want_opt.logprob, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_opt.option_logprobs, want_opt.option_logprobs, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got_lp.logprob, want_lp.logprob, atol=1e-5, rtol=0)
