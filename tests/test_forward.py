"""`vat.forward`: the one rule for when a model runs packed sequences under a custom 4-D attention
mask, which the DPO pair forward and the probes' scorer both follow (the pair forward's fallback
is also checked in tests/modules/test_dpo.py), and `encode_pair`'s split of context and
continuation."""

import numpy as np
import pytest
import torch

from vat.forward import (
    applies_any_mask,
    attention_bias,
    base_model,
    encode_pair,
    packed_attention,
)
from vat.models import ModelSpec, load_model
from vat.probes import Request, Scorer


@pytest.fixture
def tiny(tiny_dir):
    """A fresh tiny Llama (sdpa attention): each test may change its config."""
    return load_model(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_llama_packs_under_sdpa_and_eager(tiny, attn, monkeypatch):
    monkeypatch.setattr(tiny.config, "_attn_implementation", attn)
    assert tiny.config.model_type == "llama"
    assert packed_attention(tiny, 64) == attn and applies_any_mask(tiny)


def test_flash_attention_falls_back(tiny, monkeypatch):
    """Flash attention takes no 4-D mask, nor padding inside a row."""
    monkeypatch.setattr(tiny.config, "_attn_implementation", "flash_attention_2")
    assert packed_attention(tiny, 64) is None and not applies_any_mask(tiny)


def test_an_unknown_model_type_falls_back(tiny, monkeypatch):
    """A model type not known to apply a ready 4-D mask as given does not pack, whatever its
    attention (its 2-D padding masks still go anywhere)."""
    monkeypatch.setattr(tiny.config, "model_type", "some_other_lm")
    assert packed_attention(tiny, 64) is None and applies_any_mask(tiny)


def test_a_sliding_window_shorter_than_the_sequences_falls_back(tiny, monkeypatch):
    """The custom mask would not apply the window: pack only sequences that fit in it."""
    monkeypatch.setattr(tiny.config, "sliding_window", 32, raising=False)
    assert packed_attention(tiny, 32) == "sdpa"
    assert packed_attention(tiny, 33) is None
    monkeypatch.setattr(tiny.config, "use_sliding_window", False, raising=False)
    assert packed_attention(tiny, 33) == "sdpa"  # a window configured but switched off


def test_a_peft_model_is_asked_about_its_base(tiny, monkeypatch):
    from peft import LoraConfig, get_peft_model

    wrapped = get_peft_model(tiny, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    assert base_model(wrapped) is tiny
    assert packed_attention(wrapped, 64) == "sdpa"
    monkeypatch.setattr(tiny.config, "_attn_implementation", "eager")
    assert packed_attention(wrapped, 64) == "eager"


def test_attention_bias_in_the_form_each_implementation_takes():
    keep = torch.tensor([[True, False], [True, True]])[None, None]
    assert attention_bias(keep, "sdpa", torch.float32) is keep
    bias = attention_bias(keep, "eager", torch.bfloat16)
    assert bias.dtype == torch.bfloat16
    assert bias[0, 0].tolist() == [[0, torch.finfo(torch.bfloat16).min], [0, 0]]


def test_the_scorer_packs_by_the_rule_and_scores_alike_either_way(tiny, monkeypatch):
    """The scorer packs a prefix group exactly when `packed_attention` allows its sequences;
    otherwise it runs them padded after the cached prefix, with the same scores."""
    rng = np.random.default_rng(0)
    pre = [int(x) for x in rng.integers(5, 200, 12)]
    reqs = [Request(tuple(pre + [int(x) for x in rng.integers(5, 200, 1 + i % 3)]),
                    tuple(int(x) for x in rng.integers(5, 200, 2 + i % 4)), group=0)
            for i in range(8)]  # fmt: skip
    fulls = [list(r.context) + list(r.continuation) for r in reqs]
    ctx_lens = [len(r.context) for r in reqs]
    longest = max(map(len, fulls))
    scorer = Scorer(tiny, batch_size=4, progress=False)

    def packed() -> list[bool]:
        return [u.packed for u in scorer._units(reqs, fulls, fulls, ctx_lens)]

    assert packed() == [True]
    want = scorer.score(reqs)
    monkeypatch.setattr(tiny.config, "sliding_window", longest - 1, raising=False)
    assert packed() == [False]  # a window the sequences overrun
    monkeypatch.setattr(tiny.config, "sliding_window", longest, raising=False)
    assert packed() == [True]
    monkeypatch.setattr(tiny.config, "model_type", "some_other_lm")
    assert packed() == [False]
    got = scorer.score(reqs)
    np.testing.assert_allclose(got.logprob, want.logprob, atol=1e-5, rtol=0)


def test_encode_pair_moves_trailing_space_like_lm_eval(tok):
    c1, x1 = encode_pair(tok, "What I do: ", "I help.")
    c2, x2 = encode_pair(tok, "What I do:", " I help.")
    assert (c1, x1) == (c2, x2)
