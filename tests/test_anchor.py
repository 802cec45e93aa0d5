"""Tax-aware DPO (`vat.anchor`): the anchor penalties by hand, their gradient, lambda = 0 is plain
DPO, the anchor pairs (other values, train split only) and the module's anchored step."""

from collections import Counter
from dataclasses import replace
from functools import partial

import pytest
import torch

from tests import schwartz as V
from vat.anchor import anchored_loss, margin_shift, pair_anchor, value_anchor
from vat.data.collate import PreferenceCollator
from vat.data.datasets import PreferenceDataset
from vat.losses import dpo_sigmoid_loss
from vat.modules import DPOModule

T = partial(torch.tensor, dtype=torch.float32)
# two anchor pairs: h = (pc - pr) - (rc - rr) = (1 - 0.5, 0 - (-1)) = (0.5, 1.0)
PC, PR, RC, RR = T([-1.0, -2.0]), T([-2.0, -2.0]), T([-1.5, -2.0]), T([-2.0, -1.0])


def test_margin_shift_by_hand():
    assert margin_shift(PC, PR, RC, RR).tolist() == [0.5, 1.0]


def test_pair_anchor_by_hand():
    # beta h = (0.05, 0.1): P = (0.05^2 + 0.1^2) / 2 = 0.00625
    out = pair_anchor(PC, PR, RC, RR, beta=0.1)
    assert out.penalty.item() == pytest.approx(0.00625, rel=1e-6)
    assert out.shifts.tolist() == pytest.approx([0.05, 0.1])
    assert not out.shifts.requires_grad


def test_value_anchor_by_hand():
    # one value: its mean beta h = 0.075, P = 0.075^2 = 0.005625; two values: as pair_anchor
    same = value_anchor(PC, PR, RC, RR, beta=0.1, values=torch.tensor([3, 3]))
    assert same.penalty.item() == pytest.approx(0.005625, rel=1e-6)
    apart = value_anchor(PC, PR, RC, RR, beta=0.1, values=torch.tensor([3, 7]))
    assert apart.penalty.item() == pytest.approx(0.00625, rel=1e-6)
    # shifts that cancel within a value cost nothing in the value form, everything in the pair form
    pc = T([-1.0, -3.0])  # h = (1 - 0.5, -1 - (-1)) ... set up h = (+0.5, -0.5)
    pr, rc, rr = T([-2.0, -2.0]), T([-1.5, -2.0]), T([-2.0, -1.5])
    assert margin_shift(pc, pr, rc, rr).tolist() == [0.5, -0.5]
    assert value_anchor(pc, pr, rc, rr, beta=1.0, values=torch.tensor([2, 2])).penalty.item() == 0
    assert pair_anchor(pc, pr, rc, rr, beta=1.0).penalty.item() == pytest.approx(0.25)


@pytest.mark.parametrize("fn", [pair_anchor, value_anchor])
def test_anchor_is_zero_with_zero_gradient_when_policy_is_reference(fn):
    pc, pr = T([-3.0, -4.0, -5.0]).requires_grad_(), T([-2.0, -6.0, -1.0]).requires_grad_()
    out = fn(pc, pr, pc.detach().clone(), pr.detach().clone(), beta=0.1,
             values=torch.tensor([0, 1, 1]))  # fmt: skip
    assert out.penalty.item() == 0.0
    out.penalty.backward()
    assert pc.grad.abs().max().item() == 0.0 and pr.grad.abs().max().item() == 0.0


@pytest.mark.parametrize("fn", [pair_anchor, value_anchor])
def test_anchor_gradient_pushes_a_perturbed_margin_back(fn):
    """A margin moved up by +2 (and one moved down by -1): a gradient step on the penalty moves each
    back toward the reference, by 2 lr beta^2 h (pair form, one value per pair)."""
    rc, rr = T([-3.0, -4.0]), T([-2.0, -6.0])
    pc = (rc + T([2.0, -1.0])).requires_grad_()
    pr = rr.clone().requires_grad_()
    values = torch.tensor([0, 1])
    out = fn(pc, pr, rc, rr, beta=0.5, values=values)
    out.penalty.backward()
    # d/dpc mean_i (beta h_i)^2 = 2 beta^2 h_i / A = 2 * 0.25 * h / 2 = 0.25 h; d/dpr = -0.25 h
    assert pc.grad.tolist() == pytest.approx([0.5, -0.25])
    assert pr.grad.tolist() == pytest.approx([-0.5, 0.25])
    with torch.no_grad():
        h_after = margin_shift(pc - pc.grad, pr - pr.grad, rc, rr)
    assert h_after.tolist() == pytest.approx([1.0, -0.5])  # halfway back, both signs


def test_lambda_zero_is_plain_dpo_exactly():
    pc, pr, rc, rr = T([-1.0, -2.5]), T([-2.0, -1.0]), T([-1.2, -2.0]), T([-1.9, -1.1])
    dpo = dpo_sigmoid_loss(pc, pr, rc, rr, beta=0.1).loss
    anchor = pair_anchor(PC, PR, RC, RR, beta=0.1)
    assert anchored_loss(dpo, anchor, 0.0) is dpo
    assert anchored_loss(dpo, anchor, 0) is dpo
    assert anchored_loss(dpo, None, 3.0) is dpo
    assert anchored_loss(dpo, anchor, 2.0).item() == pytest.approx(dpo.item() + 2 * 0.00625)


def test_empty_anchor_batch_costs_nothing():
    e = torch.zeros(0)
    assert pair_anchor(e, e, e, e).penalty.item() == 0.0
    assert value_anchor(e, e, e, e, values=torch.zeros(0, dtype=torch.long)).penalty.item() == 0.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True])
def test_bad_lambda_is_refused(bad):
    with pytest.raises(ValueError, match="lambda"):
        anchored_loss(torch.tensor(1.0), None, bad)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="beta"):
        pair_anchor(PC, PR, RC, RR, beta=0.0)
    with pytest.raises(ValueError, match="one shape"):
        pair_anchor(PC, PR, RC, T([1.0]))
    with pytest.raises(ValueError, match="values"):
        value_anchor(PC, PR, RC, RR)


# ---------------------------------------------------------------------------- anchor pairs
def test_anchor_pairs_are_other_values_train_split_evenly(tok, items, train_prompt):
    ds = PreferenceDataset(items, "benevolence", tok, train_prompt, anchor_per_pair=2)
    n = len(ds)
    assert len(ds.anchor_examples) == 2 * n and len(ds.scored_examples) == 3 * n
    assert [e["index"] for e in ds.scored_examples] == list(range(3 * n))
    by_id = {it.id: it for it in items}
    counts = Counter()
    for (c, r), e in zip(ds.anchor_pairs, ds.anchor_examples, strict=True):
        assert c.value != "benevolence" and c.split == r.split == "train"
        assert (c.polarity, r.polarity) == ("express", "suppress")  # chosen = express, as DPO
        assert by_id[e["chosen_id"]].value == V.BASIC_VALUES[e["value"]]
        counts[c.value] += 1
    assert len(counts) == 9 and max(counts.values()) - min(counts.values()) <= 1
    # each target example carries its anchors; the collator appends them after the target pairs
    assert sum(len(ds[i]["anchors"]) for i in range(n)) == 2 * n
    batch = PreferenceCollator(pad_token_id=tok.pad_token_id)([ds[0], ds[1]])
    assert batch["is_anchor"].tolist() == [False, False, True, True, True, True]
    assert batch["index"][:2].tolist() == [0, 1] and (batch["index"][2:] >= n).all()
    assert batch["input_ids"].shape[0] == 12  # 6 pairs: chosen rows, then rejected rows


def test_anchor_draw_is_seeded_and_plain_dpo_has_none(tok, items, train_prompt):
    a = PreferenceDataset(items, "security", tok, train_prompt, anchor_per_pair=1, placebo_seed=0)
    b = PreferenceDataset(items, "security", tok, train_prompt, anchor_per_pair=1, placebo_seed=0)
    c = PreferenceDataset(items, "security", tok, train_prompt, anchor_per_pair=1, placebo_seed=1)
    ids = lambda d: [e["chosen_id"] for e in d.anchor_examples]  # noqa: E731
    assert ids(a) == ids(b) != ids(c)
    plain = PreferenceDataset(items, "security", tok, train_prompt)
    assert plain.anchor_examples == [] and "anchors" not in plain[0]
    assert [e["chosen_input_ids"] for e in plain.examples] == [
        e["chosen_input_ids"] for e in a.examples
    ]  # the target pairs are the same with and without anchors
    with pytest.raises(ValueError, match="anchor_per_pair"):
        PreferenceDataset(items, "security", tok, train_prompt, anchor_per_pair=-1)


# ---------------------------------------------------------------------------- the module
def _module(tiny_dir, weight: float, anchor=pair_anchor):
    cfg = {"name": "tiny", "pretrained": str(tiny_dir),
           "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}}  # fmt: skip
    torch.manual_seed(0)
    m = DPOModule(model=cfg, loss=partial(dpo_sigmoid_loss, beta=0.1),
                  optimizer=partial(torch.optim.SGD, lr=0.5), reference="precomputed",
                  average_logps=False, sft_weight=0.0, share_prompt=True,
                  anchor=partial(anchor, beta=0.1), anchor_weight=weight)  # fmt: skip
    m.configure_model()
    return m


def _perturbed_reference(m, batch, n_scored: int, delta: float) -> torch.Tensor:
    """Reference log-probs equal to the policy's on target pairs and `delta` below on the anchors'
    chosen responses: every anchor margin starts `delta` above its reference (h = delta)."""
    with torch.no_grad():
        pc, pr, _ = m.concatenated_logps(m.model, batch)
    ref = torch.zeros(n_scored, 2, dtype=torch.float64)
    ref[batch["index"], 0] = pc.double() - delta * batch["is_anchor"].double()
    ref[batch["index"], 1] = pr.double()
    return ref


@pytest.mark.parametrize("anchor", [pair_anchor, value_anchor])
def test_module_step_pulls_anchor_margins_back(tiny_dir, tok, items, train_prompt, anchor):
    """Every anchor margin starts 2 above its reference; one small SGD step of the anchored module
    (lambda = 50) moves each of them back toward it through the model's weights, while the plain
    step (lambda = 0) leaves them where they were."""
    prompt = replace(train_prompt, max_length=64)
    ds = PreferenceDataset(items, "benevolence", tok, prompt, anchor_per_pair=1)
    batch = PreferenceCollator(pad_token_id=tok.pad_token_id)([ds[i] for i in range(3)])
    a = batch["is_anchor"]
    after = {}
    for weight in (0.0, 50.0):
        m = _module(tiny_dir, weight=weight, anchor=anchor)
        torch.manual_seed(1)
        with torch.no_grad():
            for n, p in m.model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.02)  # lora_B = 0 would give lora_A no gradient
        m.set_reference_logps(_perturbed_reference(m, batch, len(ds.scored_examples), delta=2.0))
        opt = torch.optim.SGD([p for p in m.model.parameters() if p.requires_grad], lr=1e-3)
        opt.zero_grad()
        m._step(batch, "val").backward()
        opt.step()
        with torch.no_grad():
            pc, pr, _ = m.concatenated_logps(m.model, batch)
            rc, rr = m.reference_concatenated(batch)
        after[weight] = margin_shift(pc, pr, rc, rr)[a]
    assert after[0.0].tolist() == pytest.approx([2.0] * int(a.sum()), abs=0.05)
    assert (after[50.0] < 2.0 - 0.2).all() and (after[50.0] > 0).all()


def test_module_lambda_zero_gives_the_plain_dpo_loss(tiny_dir, tok, items, train_prompt):
    """With anchors in the batch and lambda = 0 the step's loss is plain DPO's on the target pairs
    (the anchor rows share the forward; rows do not interact, so only float rounding differs)."""
    anchored = PreferenceDataset(items, "benevolence", tok, replace(train_prompt, max_length=64),
                                 anchor_per_pair=1)  # fmt: skip
    collate = PreferenceCollator(pad_token_id=tok.pad_token_id)
    batch = collate([anchored[i] for i in range(3)])
    plain_batch = collate([anchored.examples[i] for i in range(3)])
    m = _module(tiny_dir, weight=0.0)
    with torch.no_grad():
        for n, p in m.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)  # policy != reference, so the loss is not ln 2
    ref = torch.randn(len(anchored.scored_examples), 2, dtype=torch.float64) - 60
    m.set_reference_logps(ref)
    with torch.no_grad():
        lam0 = m._step(batch, "val").item()
        plain = m._step(plain_batch, "val").item()
        m.anchor_weight = 1.0
        lam1 = m._step(batch, "val").item()
    assert lam0 == pytest.approx(plain, abs=1e-5)
    assert lam1 > lam0 + 1e-3  # the penalty is there once lambda > 0


@pytest.mark.slow
def test_train_py_runs_anchored_dpo_end_to_end(tmp_path):
    """``python train.py method=dpo_anchored``: anchor pairs precomputed with the target's (one
    cached reference file), the value-gap check on the target pairs only, the penalty logged."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    from tests.overrides import FAST

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "run"
    cmd = [sys.executable, "train.py", *FAST, "method=dpo_anchored", "method.anchor_per_pair=2",
           "method.module.anchor_weight=5", "trainer.max_steps=3", "callbacks.vat.every_n_steps=3",
           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={out}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    n = summary["value_gap"]["n_pairs"]
    assert summary["anchor"]["pairs"] == 2 * n and summary["anchor"]["weight"] == 5.0
    assert (
        len(summary["anchor"]["values"]) == 9 and "benevolence" not in summary["anchor"]["values"]
    )
    refs = list((tmp_path / "cache" / "reference").glob("*/ref.pt"))
    assert len(refs) == 1 and torch.load(refs[0], weights_only=True).shape == (3 * n, 2)
    log = pd.read_csv(next((out / "csv").rglob("metrics.csv")))
    assert log["anchor/penalty"].notna().sum() == 3 and (log["anchor/penalty"].dropna() >= 0).all()
