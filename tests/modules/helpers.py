"""What the DPO module tests share (tests/modules/test_dpo.py, tests/test_reference.py): the first
four benevolence pairs of the bundled set, collated for the tiny model, and a `DPOModule` on it."""

from __future__ import annotations

from functools import partial

import torch

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
    ds = PreferenceDataset(load_items(BUNDLED), "benevolence", tok, train_prompt)
    collate = PreferenceCollator(pad_token_id=tok.pad_token_id)
    return collate([ds[i] for i in range(4)]), ds, collate


def dpo_module(tiny_dir, reference, lora=True) -> DPOModule:
    """A DPO module on the tiny model (LoRA r=4 unless `lora` is false), its policy built."""
    cfg = {"name": "tiny", "pretrained": str(tiny_dir), "lora": LORA if lora else None}
    m = DPOModule(model=cfg, loss=partial(dpo_sigmoid_loss, beta=0.1), optimizer=partial(torch.optim.AdamW, lr=1e-3),
                  reference=reference, average_logps=False, sft_weight=0.0, share_prompt=True)  # fmt: skip
    m.configure_model()
    return m
