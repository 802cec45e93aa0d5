"""SFT and DPO LightningModules: reference policies, the DPO loss at step 0, frozen references."""

import math
from functools import partial

import pytest
import torch

from vat.data import BUNDLED, load_items
from vat.data.collate import PreferenceCollator
from vat.data.datasets import PreferenceDataset
from vat.losses import dpo_sigmoid_loss
from vat.models import ModelSpec, load_tokenizer
from vat.modules import DPOModule

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


@pytest.fixture(scope="module")
def batch_and_data(tiny_dir, train_prompt):
    spec = ModelSpec(name="tiny", pretrained=str(tiny_dir))
    tok = load_tokenizer(spec)
    ds = PreferenceDataset(load_items(BUNDLED), "benevolence", tok, train_prompt)
    collate = PreferenceCollator(pad_token_id=tok.pad_token_id)
    return collate([ds[i] for i in range(4)]), ds, collate


def _module(tiny_dir, reference, lora=True):
    cfg = {"name": "tiny", "pretrained": str(tiny_dir), "lora": LORA if lora else None}
    m = DPOModule(model=cfg, loss=partial(dpo_sigmoid_loss, beta=0.1), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                  reference=reference)  # fmt: skip
    m.configure_model()
    return m


@pytest.mark.parametrize("reference", ["adapter_disabled", "frozen_copy"])
def test_dpo_loss_at_step_zero_is_ln2(tiny_dir, batch_and_data, reference):
    batch, _, _ = batch_and_data
    m = _module(tiny_dir, reference)
    pc, pr, _ = m.concatenated_logps(m.model, batch)
    rc, rr = m.reference_concatenated(batch)
    out = m.loss_fn(pc, pr, rc, rr)
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_precomputed_and_online_reference_give_the_same_loss(tiny_dir, batch_and_data):
    batch, ds, collate = batch_and_data
    online = _module(tiny_dir, "adapter_disabled")
    # make the policy differ from the reference so the loss is not trivially ln 2
    with torch.no_grad():
        for n, p in online.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    pre = _module(tiny_dir, "precomputed")
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
    m = _module(tiny_dir, "adapter_disabled")
    with torch.no_grad():
        for n, p in m.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
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
    m = _module(tiny_dir, "frozen_copy", lora=False)
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
    with pytest.raises(ValueError, match="adapter_disabled with model.lora=null: the reference is"):
        _module(tiny_dir, "adapter_disabled", lora=False)
    with pytest.raises(ValueError, match=r"method.module.reference=copy: expected one of"):
        DPOModule(model={}, loss=None, optimizer=None, reference="copy")


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prompt_forward_equals_two_full_sequences(tiny_dir, batch_and_data, attn):
    """`pair_logps` packed (prompt once, LM head on responses only) gives the plain forward's
    log-probs and token counts, and the same gradients for the adapters."""
    from vat.forward import pair_logps

    batch, _, _ = batch_and_data
    m = _module(tiny_dir, "adapter_disabled")
    m.model.get_base_model().config._attn_implementation = attn
    with torch.no_grad():
        for n, p in m.model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    grads, outs = [], []
    for share in (False, True):
        m.model.zero_grad()
        total, n = pair_logps(m.model, batch, share_prompt=share)
        (total * torch.linspace(0.5, 1.5, len(total))).sum().backward()
        outs.append((total.detach(), n))
        grads.append(
            {k: p.grad.clone() for k, p in m.model.named_parameters() if p.grad is not None}
        )
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=2e-4, rtol=1e-6)
    assert outs[0][1].tolist() == outs[1][1].tolist()
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], atol=1e-4, rtol=1e-3)
    # and the reference view (adapters off) too
    rc, rr = m.reference_concatenated(batch)
    m.share_prompt = False
    rc0, rr0 = m.reference_concatenated(batch)
    torch.testing.assert_close(torch.cat([rc, rr]), torch.cat([rc0, rr0]), atol=2e-4, rtol=1e-6)


def test_shared_prompt_falls_back_for_other_models(tiny_dir, batch_and_data):
    """A model type not known to take a custom 4-D mask runs the plain (2B, L) batch."""
    from vat.forward import packed_attention, pair_logps

    batch, _, _ = batch_and_data
    m = _module(tiny_dir, "adapter_disabled")
    assert packed_attention(m.model, 64) is not None
    m.model.get_base_model().config.model_type = "some_other_lm"
    assert packed_attention(m.model, 64) is None
    with torch.no_grad():
        total, n = pair_logps(m.model, batch)
        full, n_full = pair_logps(m.model, {k: v for k, v in batch.items()
                                            if not k.startswith(("packed", "target"))})  # fmt: skip
    assert torch.equal(total, full) and torch.equal(n, n_full)
