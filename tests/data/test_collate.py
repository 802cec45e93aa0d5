"""`vat.data.collate`: the SFT and preference collators (padding, labels, the packed pair rows of
the shared-prompt forward), and the log-probs read off a collated batch equal the probe's scores."""

from __future__ import annotations

import pytest
import torch

from tests.data.helpers import prompt_and_response
from vat.data.collate import PreferenceCollator, SFTCollator
from vat.losses import IGNORE_INDEX
from vat.models import ModelSpec


def test_preference_collator(pref, tok):
    batch = [pref[i] for i in (0, 3, 5)]
    b = len(batch)
    out = PreferenceCollator(tok.pad_token_id)(batch)
    rows = [e["chosen_input_ids"] for e in batch] + [e["rejected_input_ids"] for e in batch]
    labs = [e["chosen_labels"] for e in batch] + [e["rejected_labels"] for e in batch]
    width = max(map(len, rows))
    assert out["input_ids"].shape == out["attention_mask"].shape == out["labels"].shape
    assert out["input_ids"].shape == (2 * b, width)
    assert out["index"].tolist() == [0, 3, 5] and out["index"].dtype == torch.long
    assert out["attention_mask"].sum(1).tolist() == [len(s) for s in rows]
    for i, (s, y) in enumerate(zip(rows, labs, strict=True)):  # chosen rows first, right padding
        n = len(s)
        assert out["input_ids"][i, :n].tolist() == s
        assert out["labels"][i, :n].tolist() == y
        assert out["attention_mask"][i, :n].all() and not out["attention_mask"][i, n:].any()
        assert (out["input_ids"][i, n:] == tok.pad_token_id).all()
        assert (out["labels"][i, n:] == IGNORE_INDEX).all()

    padded = PreferenceCollator(tok.pad_token_id, pad_to_multiple_of=64)(batch)
    assert padded["input_ids"].shape[1] % 64 == 0
    assert padded["attention_mask"].sum().item() == out["attention_mask"].sum().item()


def test_packed_pairs_hold_each_pair_once_with_its_prompt(pref, tok):
    """`pack_pairs`: row i = prompt + chosen + rejected; rejected positions continue the prompt;
    every response token is predicted from the right position (the first rejected one from the
    last prompt token), and the grid slots put chosen rows first."""
    batch = [pref[i] for i in (0, 3, 5)]
    b = len(batch)
    out = PreferenceCollator(tok.pad_token_id)(batch)
    ids, pos, seg = out["packed_input_ids"], out["packed_position_ids"], out["packed_segment"]
    assert ids.shape == pos.shape == seg.shape and ids.shape[0] == b
    grid = out["response_mask"].shape[1]
    for i, e in enumerate(batch):
        p, c = prompt_and_response(e, "chosen_")
        _, r = prompt_and_response(e, "rejected_")
        n = len(p) + len(c) + len(r)
        assert ids[i, :n].tolist() == p + c + r and (ids[i, n:] == tok.pad_token_id).all()
        assert pos[i, :n].tolist() == [*range(len(p) + len(c)), *range(len(p), len(p) + len(r))]
        assert seg[i, :n].tolist() == [0] * len(p) + [1] * len(c) + [2] * len(r)
        assert (seg[i, n:] == -1).all()
        for side, resp, row in (("c", c, i), ("r", r, b + i)):
            sel = out["target_slot"] // grid == row
            assert out["target_ids"][sel].tolist() == resp
            assert (out["target_row"][sel] == i).all()
            first = len(p) if side == "c" else len(p) + len(c)
            want = [len(p) - 1, *range(first, first + len(resp) - 1)]
            assert out["target_pos"][sel].tolist() == want
            assert out["response_mask"][row].sum().item() == len(resp)


def test_pairs_without_a_shared_prompt_are_not_packed(pref, tok):
    e = dict(pref[0])
    e["rejected_input_ids"] = [e["rejected_input_ids"][0] + 1, *e["rejected_input_ids"][1:]]
    assert "packed_input_ids" not in PreferenceCollator(tok.pad_token_id)([pref[1], e])
    assert "packed_input_ids" in PreferenceCollator(tok.pad_token_id)([pref[1], pref[0]])


def test_sft_collator(sft, tok):
    batch = [sft[i] for i in range(4)]
    out = SFTCollator(tok.pad_token_id, pad_to_multiple_of=8)(batch)
    lens = [len(e["input_ids"]) for e in batch]
    assert out["input_ids"].shape == (4, -(-max(lens) // 8) * 8)
    assert out["attention_mask"].sum(1).tolist() == lens
    assert out["index"].tolist() == [0, 1, 2, 3]
    for i, e in enumerate(batch):
        assert out["labels"][i, : lens[i]].tolist() == e["labels"]
        assert (out["labels"][i, lens[i] :] == IGNORE_INDEX).all()
    # Works as a DataLoader collate_fn.
    loader = torch.utils.data.DataLoader(sft, batch_size=5, collate_fn=SFTCollator(0))
    assert sum(b["input_ids"].shape[0] for b in loader) == len(sft)


def test_batch_logprobs_equal_probe_scores(tiny_dir, pref, tok):
    """The response log-probs read off a collated batch are what the probe's Scorer computes."""
    from vat.models import load
    from vat.probes import Request, Scorer

    model, _ = load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
    batch = [pref[i] for i in range(3)]
    out = PreferenceCollator(tok.pad_token_id)(batch)
    with torch.no_grad():
        logits = model(input_ids=out["input_ids"], attention_mask=out["attention_mask"]).logits
    lp = logits[:, :-1].float().log_softmax(-1)
    targets = out["labels"][:, 1:]
    # Leave the EOS out: the probe scores the action alone.
    mask = (targets != IGNORE_INDEX) & (targets != tok.eos_token_id)
    tok_lp = lp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    ours = (tok_lp * mask).sum(1).double().numpy()

    reqs = []
    for e in batch:
        for side in ("chosen_", "rejected_"):
            p, r = prompt_and_response(e, side)
            reqs.append((side, Request(tuple(p), tuple(r[:-1]))))
    ordered = [r for s in ("chosen_", "rejected_") for side, r in reqs if side == s]
    ref = Scorer(model, batch_size=2, reuse_prefix=False, progress=False).score(ordered).logprob
    assert ours == pytest.approx(ref, abs=1e-4)
