"""The training data of a method, as Lightning takes it: ``method.datamodule`` in the config.

A method's YAML names its data module (``_target_``) next to its LightningModule, so `vat.train`
never asks which method it runs:

- `SFTDataModule`: the express actions of the target value (train split), or the value-neutral
  placebo (``train_data: neutral``);
- `PreferenceDataModule`: (express, suppress) pairs of the target value, or a placebo's
  (``shuffled``, ``mixed``), plus ``anchor_per_pair`` x N anchor pairs of the other values for
  tax-aware DPO.

Both tokenise with the run's ``prompt`` (`TrainPrompt`) when built, and serve the resumable,
epoch-shuffled loader (`ResumableDataLoader`, `EpochShuffleSampler`: the order is fixed by
(seed, epoch), so a resumed run sees the batches an uninterrupted one would). A placebo's draw is
seeded by the run's ``seed``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import lightning as L

from vat.data import placebo
from vat.data.collate import PreferenceCollator, SFTCollator
from vat.data.datasets import PreferenceDataset, SFTDataset
from vat.data.items import ItemSet
from vat.data.prompt import TrainPrompt
from vat.data.sampling import EpochShuffleSampler, ResumableDataLoader


class TrainingDataModule(L.LightningDataModule):
    """A training set built once from the items; `train_dataloader` serves it."""

    dataset_class: ClassVar[type]
    collator_class: ClassVar[type]
    kinds: ClassVar[tuple[str, ...]]  # the ``train_data`` kinds it takes (`vat.data.placebo`)

    def __init__(self, items: ItemSet, target: str, tokenizer, prompt: dict | TrainPrompt, *,
                 seed: int, batch_size: int, num_workers: int = 0, train_data: str = "target",
                 **dataset_args: Any) -> None:  # fmt: skip
        super().__init__()
        prompt = prompt if isinstance(prompt, TrainPrompt) else TrainPrompt(**prompt)
        prompt.check_names(items.taxonomy)
        self.dataset = self.dataset_class(items, target, tokenizer, prompt, train_data=train_data,
                                          placebo_seed=int(seed), **dataset_args)  # fmt: skip
        self.collate = self.collator_class(pad_token_id=tokenizer.pad_token_id)
        self.seed, self.batch_size, self.num_workers = int(seed), int(batch_size), int(num_workers)

    def train_dataloader(self) -> ResumableDataLoader:
        return ResumableDataLoader(
            self.dataset, batch_size=self.batch_size, collate_fn=self.collate,
            sampler=EpochShuffleSampler(len(self.dataset), self.seed), num_workers=self.num_workers,
        )  # fmt: skip

    def summary(self) -> dict:
        """What the run summary records about the training set."""
        return {"train_data": self.dataset.train_data}


class SFTDataModule(TrainingDataModule):
    dataset_class = SFTDataset
    collator_class = SFTCollator
    kinds = placebo.SFT_KINDS


class PreferenceDataModule(TrainingDataModule):
    dataset_class = PreferenceDataset
    collator_class = PreferenceCollator
    kinds = placebo.PREFERENCE_KINDS

    def summary(self) -> dict:
        out = super().summary()
        if any(getattr(self.dataset, "swapped", None) or ()):
            out["placebo_swapped"] = int(sum(self.dataset.swapped))
        anchors = getattr(self.dataset, "anchor_examples", None)
        if anchors:
            out["anchor"] = {"pairs": len(anchors),
                             "values": sorted({self.dataset.value_names[e["value"]] for e in anchors})}  # fmt: skip
        return out
