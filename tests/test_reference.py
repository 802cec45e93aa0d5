"""`vat.reference`: where DPO's reference log-probs come from. Precomputed equals the online
reference, the adapter-disabled view is the base model, a frozen copy never moves, each class's
rule (`Reference.check`) is the module's error, and `value_gap` by hand."""

import logging
import math

import pytest
import torch

from tests.modules.helpers import dpo_module, pair_batch, perturb_lora
from vat.models import ModelSpec
from vat.modules import DPOModule


@pytest.fixture(scope="module")
def batch_and_data(tiny_dir, train_prompt):
    return pair_batch(tiny_dir, train_prompt)


def test_precomputed_and_online_reference_give_the_same_loss(tiny_dir, batch_and_data):
    batch, ds, collate = batch_and_data
    online = dpo_module(tiny_dir, "adapter_disabled")
    # make the policy differ from the reference so the loss is not trivially ln 2
    perturb_lora(online)
    pre = dpo_module(tiny_dir, "precomputed")
    pre.model.load_state_dict(online.model.state_dict())
    # the reference pass train.py runs (`vat.reference.compute_logps`, as `precompute` calls it),
    # with a different batching than the training batch
    from vat.models import load_model
    from vat.reference import compute_logps

    base = load_model(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
    ref = compute_logps(base, ds.examples, collate, batch_size=3, average=False)
    pre.set_reference_logps(ref)
    losses = []
    for m in (online, pre):
        pc, pr, _ = m.concatenated_logps(m.model, batch)
        rc, rr = m.reference_concatenated(batch)
        losses.append(m.loss_fn(pc, pr, rc, rr).loss.item())
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    assert abs(losses[0] - math.log(2)) > 1e-4


def test_adapter_disabled_reference_equals_base_model(tiny_dir, batch_and_data):
    batch, _, _ = batch_and_data
    m = dpo_module(tiny_dir, "adapter_disabled")
    perturb_lora(m)
    rc, rr = m.reference_concatenated(batch)
    from vat.models import load_model

    base = load_model(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
    bc, br, _ = m.concatenated_logps(base, batch)
    torch.testing.assert_close(rc, bc.detach(), atol=1e-5, rtol=0)
    torch.testing.assert_close(rr, br.detach(), atol=1e-5, rtol=0)
    pc, _, _ = m.concatenated_logps(m.model, batch)
    assert not torch.allclose(pc, bc, atol=1e-3)  # the policy itself did move


def test_frozen_reference_cannot_move(tiny_dir, batch_and_data):
    batch, _, _ = batch_and_data
    m = dpo_module(tiny_dir, "frozen_copy", lora=False)
    assert not any(p.requires_grad for p in m.ref_model.parameters()) and not m.ref_model.training
    before = {k: v.clone() for k, v in m.ref_model.state_dict().items()}
    opt = m.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not ids & {id(p) for p in m.ref_model.parameters()}
    for _ in range(2):
        pc, pr, _ = m.concatenated_logps(m.model, batch)
        rc, rr = m.reference_concatenated(batch)
        m.loss_fn(pc, pr, rc, rr).loss.backward()
        opt.step()
        opt.zero_grad()
    after = m.ref_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    pc2, _, _ = m.concatenated_logps(m.model, batch)
    assert not torch.allclose(pc.detach(), pc2.detach())  # the policy trained


def test_adapter_disabled_without_lora_fails_fast(tiny_dir):
    """The module raises preflight's message (`vat.reference`: one rule, one text)."""
    with pytest.raises(
        ValueError, match=r"adapter_disabled with model\.lora=null: the reference is"
    ):
        dpo_module(tiny_dir, "adapter_disabled", lora=False)
    with pytest.raises(ValueError, match=r"method.module.reference=copy: expected one of"):
        DPOModule(
            model={},
            loss=None,
            optimizer=None,
            reference="copy",
            average_logps=False,
            sft_weight=0.0,
            share_prompt=True,
        )


def test_frozen_copy_under_zero2_warns(tiny_dir, caplog):
    """ZeRO-1/2 do not shard weights: a frozen reference copy is whole on every GPU."""
    from functools import partial
    from types import SimpleNamespace

    from vat.losses import dpo_sigmoid_loss
    from vat.modules import DPOModule
    from vat.strategies import DeepSpeedStrategy

    m = DPOModule(model={"name": "tiny", "pretrained": str(tiny_dir), "lora": {"r": 4}},
                  loss=partial(dpo_sigmoid_loss, beta=0.1), optimizer=None,
                  reference="frozen_copy", average_logps=False, sft_weight=0.0, share_prompt=True)  # fmt: skip
    m._trainer = SimpleNamespace(
        strategy=DeepSpeedStrategy(config={"zero_optimization": {"stage": 2}})
    )
    with caplog.at_level(logging.WARNING, logger="vat.reference"):
        m.configure_model()
    assert "frozen_copy under DeepSpeed ZeRO-2" in caplog.text and "precomputed" in caplog.text
    assert m.hf_zero3 is None and m.ref_model is not None


def test_resolve_takes_a_name_or_an_instance_and_names_the_choices():
    from vat import reference as R

    assert type(R.resolve("precomputed")) is R.Precomputed and R.Precomputed.precomputed
    frozen = R.FrozenCopy()
    assert R.resolve(frozen) is frozen
    assert not R.AdapterDisabled.precomputed and not R.FrozenCopy.precomputed
    with pytest.raises(
        ValueError, match="expected one of adapter_disabled, precomputed, frozen_copy"
    ):
        R.resolve(None)


def test_only_the_adapter_disabled_reference_needs_lora():
    from vat import reference as R

    assert all(R.resolve(name).check(lora=True) is None for name in R.REFERENCES)
    assert R.Precomputed().check(lora=False) is None and R.FrozenCopy().check(lora=False) is None
    assert "so it needs LoRA" in R.AdapterDisabled().check(lora=False)


def test_value_gap_by_hand():
    from vat.reference import value_gap

    # margins chosen - rejected: [1, -1, 0] -> mean 0, std sqrt(2/3), 1 of 3 preferred; the 10th and
    # 90th percentiles interpolate between the sorted margins -1, 0, 1 at positions 0.2 and 1.8.
    gap = value_gap(torch.tensor([[0.0, -1.0], [-2.0, -1.0], [-1.0, -1.0]], dtype=torch.float64))
    assert gap["n_pairs"] == 3 and gap["margin_mean"] == 0.0
    assert gap["margin_std"] == pytest.approx(math.sqrt(2 / 3))
    assert (gap["margin_p10"], gap["margin_p90"]) == pytest.approx((-0.8, 0.8))
    assert gap["share_chosen_preferred"] == pytest.approx(1 / 3) and gap["warning"] is None
    # 10 of 10 pairs already separated the right way; or no pair separated at all
    ahead = value_gap(torch.tensor([[0.0, -1.0]] * 10, dtype=torch.float64))
    assert ahead["share_chosen_preferred"] == 1.0 and "100% of training pairs" in ahead["warning"]
    same = value_gap(torch.tensor([[-1.0, -1.0001], [-2.0, -1.9995]], dtype=torch.float64))
    assert same["warning"] == "chosen and rejected are indistinguishable under the reference"
