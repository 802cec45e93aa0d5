"""`ORPOModule` on the tiny model: its loss is `orpo_loss` of the batch log-probs, SGD steps raise
the log odds ratio, it trains under Lightning and logs like DPO; and `conf/method/orpo.yaml` builds
it. The loss itself: tests/losses/test_orpo.py."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from hydra.utils import get_class, instantiate

from tests.modules.helpers import perturb_lora
from tests.schwartz import SCHWARTZ
from vat import losses as L

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


@pytest.fixture(scope="module")
def pairs(tiny_dir, train_prompt):
    from vat.data import BUNDLED, load_items
    from vat.data.collate import PreferenceCollator
    from vat.data.datasets import PreferenceDataset
    from vat.models import ModelSpec, load_tokenizer

    tok = load_tokenizer(ModelSpec(name="tiny", pretrained=str(tiny_dir)))
    ds = PreferenceDataset(load_items(BUNDLED, SCHWARTZ), "benevolence", tok, train_prompt)
    return ds, PreferenceCollator(pad_token_id=tok.pad_token_id)


def _module(tiny_dir, lam=0.1, lr=1e-3, share_prompt=True):
    from vat.modules.orpo import ORPOModule

    cfg = {"name": "tiny", "pretrained": str(tiny_dir), "lora": LORA}
    loss, optimizer = partial(L.orpo_loss, lam=lam), partial(torch.optim.SGD, lr=lr)
    m = ORPOModule(model=cfg, loss=loss, optimizer=optimizer, share_prompt=share_prompt)
    m.configure_model()
    return m


def test_module_loss_is_orpo_loss_of_the_batch_log_probs(tiny_dir, pairs):
    from vat.forward import pair_logps
    from vat.modules import DPOModule
    from vat.modules.orpo import ORPOModule

    assert not issubclass(ORPOModule, DPOModule)
    ds, collate = pairs
    batch = collate([ds[i] for i in range(4)])
    assert "packed_input_ids" in batch  # the shared-prompt path runs
    m = _module(tiny_dir)
    perturb_lora(m)
    with pytest.warns(UserWarning, match="self.log"):  # no Trainer attached: nothing is logged
        loss = m.training_step(batch, 0)
    total, count = pair_logps(m.model, batch, share_prompt=False)  # the plain (2B, L) forward
    expected = L.orpo_loss(total[:4], total[4:], count[:4], count[4:], lam=0.1).loss
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert loss.requires_grad
    # lam = 0: SFT on the chosen half of the batch
    m.loss_fn = partial(L.orpo_loss, lam=0.0)
    with pytest.warns(UserWarning, match="self.log"):
        nll = m.training_step(batch, 0)
    chosen = {k: batch[k][:4] for k in ("input_ids", "attention_mask", "labels")}
    logits = m.model(input_ids=chosen["input_ids"], attention_mask=chosen["attention_mask"]).logits
    assert nll.item() == pytest.approx(L.sft_loss(logits, chosen["labels"]).item(), abs=1e-5)


def test_sgd_steps_raise_the_log_odds_ratio(tiny_dir, pairs):
    """Four SGD steps raise the mean log odds ratio z, and the odds-ratio term does the work: SFT
    alone (lam = 0) raises the chosen log-probs and, with them, z by less (0.04 against 0.11 with
    lam = 1 on this batch)."""
    from vat.forward import pair_logps

    ds, collate = pairs
    batch = collate([ds[i] for i in range(4)])

    def log_odds_ratio(m) -> float:
        with torch.no_grad():
            total, count = pair_logps(m.model, batch)
            out = L.orpo_loss(total[:4], total[4:], count[:4], count[4:])
            return out.log_odds_ratio.mean().item()

    rise = {}
    for lam in (0.0, 1.0):
        m = _module(tiny_dir, lam=lam, lr=0.5)
        opt = m.configure_optimizers()
        opt = opt["optimizer"] if isinstance(opt, dict) else opt
        before = log_odds_ratio(m)
        for _ in range(4):
            with pytest.warns(UserWarning, match="self.log"):
                loss = m.training_step(batch, 0)
            loss.backward()
            opt.step()
            opt.zero_grad()
        rise[lam] = log_odds_ratio(m) - before
    assert rise[1.0] > 0.05 and rise[1.0] > 2 * rise[0.0]


def test_module_trains_under_lightning_and_logs_as_dpo(tiny_dir, pairs):
    import lightning as L_

    ds, collate = pairs
    loader = torch.utils.data.DataLoader([ds[i] for i in range(4)], batch_size=2,
                                         collate_fn=collate)  # fmt: skip
    m = _module(tiny_dir)
    trainer = L_.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(m, train_dataloaders=loader)
    logged = set(trainer.callback_metrics)
    assert {"train/loss", "rewards/accuracies", "rewards/margins", "logps/chosen",
            "logps/rejected", "nll_loss", "odds_ratio_loss"} <= logged  # fmt: skip
    assert trainer.global_step == 2


def test_shared_prompt_and_two_sequences_give_the_same_loss(tiny_dir, pairs):
    ds, collate = pairs
    batch = collate([ds[i] for i in range(3)])
    losses = []
    for share in (True, False):
        m = _module(tiny_dir, share_prompt=share)
        perturb_lora(m)
        with torch.no_grad(), pytest.warns(UserWarning, match="self.log"):
            losses.append(m.training_step(batch, 0).item())
    assert losses[0] == pytest.approx(losses[1], abs=2e-4)


def test_anchor_pairs_are_refused(tiny_dir, pairs):
    ds, collate = pairs
    batch = collate([ds[i] for i in range(2)])
    batch["is_anchor"] = torch.zeros(2, dtype=torch.bool)
    with pytest.raises(ValueError, match="anchor_per_pair=0"):
        _module(tiny_dir).training_step(batch, 0)


# --------------------------------------------------------------------------------------------------
# the method config


def test_method_config_builds_orpo(compose_cfg):
    from vat.modules.orpo import ORPOModule

    cfg = compose_cfg("train", ["method=orpo", "model=tiny"])
    assert cfg.method.name == "orpo" and cfg.method.train_data == "target"
    assert cfg.method.control_of is None
    assert get_class(cfg.method.module._target_) is ORPOModule
    loss = instantiate(cfg.method.module.loss)
    assert loss.func is L.orpo_loss and loss.keywords == {"lam": 0.1}
    assert "reference" not in cfg.method.module  # no reference model, no reference pass
