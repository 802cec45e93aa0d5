"""What the module tests share (tests/modules/, tests/test_reference.py): the first four
benevolence pairs of the bundled set, collated for the tiny model, a `DPOModule` on it, and a way
to move a LoRA policy off its init."""

from __future__ import annotations

from functools import partial

import torch

from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, load_items
from vat.data.collate import PreferenceCollator
from vat.data.datasets import PreferenceDataset
from vat.losses import dpo_sigmoid_loss
from vat.models import ModelSpec, load_tokenizer
from vat.modules import DPOModule

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"}


def pair_batch(tiny_dir, train_prompt):
    """(the collated batch of the first 4 pairs, the dataset, the collator)."""
    tok = load_tokenizer(ModelSpec(name="tiny", pretrained=str(tiny_dir)))
    ds = PreferenceDataset(load_items(BUNDLED, SCHWARTZ), "benevolence", tok, train_prompt)
    collate = PreferenceCollator(pad_token_id=tok.pad_token_id)
    return collate([ds[i] for i in range(4)]), ds, collate


def dpo_module(tiny_dir, reference, lora=True) -> DPOModule:
    """A DPO module on the tiny model (LoRA r=4 unless `lora` is false), its policy built."""
    cfg = {"name": "tiny", "pretrained": str(tiny_dir), "lora": LORA if lora else None}
    m = DPOModule(model=cfg, loss=partial(dpo_sigmoid_loss, beta=0.1), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                  reference=reference, average_logps=False, sft_weight=0.0, share_prompt=True)  # fmt: skip
    m.configure_model()
    return m


def perturb_lora(module, seed: int = 0) -> None:
    """Move the policy off its init (lora_B = 0, so policy = reference) with small seeded noise on
    the B matrices: chosen/rejected log-probs then differ from the base model's."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
