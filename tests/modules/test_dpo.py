"""`DPOModule`: the DPO loss at step 0 is ln 2 with either online reference, and the shared-prompt
pair forward (`vat.forward.pair_logps`) equals two full sequences. The reference policies:
tests/test_reference.py."""

import math

import pytest
import torch

from tests.modules.helpers import dpo_module, pair_batch, perturb_lora


@pytest.fixture(scope="module")
def batch_and_data(tiny_dir, train_prompt):
    return pair_batch(tiny_dir, train_prompt)


@pytest.mark.parametrize("reference", ["adapter_disabled", "frozen_copy"])
def test_dpo_loss_at_step_zero_is_ln2(tiny_dir, batch_and_data, reference):
    batch, _, _ = batch_and_data
    m = dpo_module(tiny_dir, reference)
    pc, pr, _ = m.concatenated_logps(m.model, batch)
    rc, rr = m.reference_concatenated(batch)
    out = m.loss_fn(pc, pr, rc, rr)
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-6)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_shared_prompt_forward_equals_two_full_sequences(tiny_dir, batch_and_data, attn):
    """`pair_logps` packed (prompt once, LM head on responses only) gives the plain forward's
    log-probs and token counts, and the same gradients for the adapters."""
    from vat.forward import pair_logps

    batch, _, _ = batch_and_data
    m = dpo_module(tiny_dir, "adapter_disabled")
    m.model.get_base_model().config._attn_implementation = attn
    perturb_lora(m)
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
    m = dpo_module(tiny_dir, "adapter_disabled")
    assert packed_attention(m.model, 64) is not None
    m.model.get_base_model().config.model_type = "some_other_lm"
    assert packed_attention(m.model, 64) is None
    with torch.no_grad():
        total, n = pair_logps(m.model, batch)
        full, n_full = pair_logps(m.model, {k: v for k, v in batch.items()
                                            if not k.startswith(("packed", "target"))})  # fmt: skip
    assert torch.equal(total, full) and torch.equal(n, n_full)
