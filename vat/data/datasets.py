"""The SFT and preference training sets of one target value, tokenised up front.

Training teaches one target Schwartz value from the train split of an `ItemSet`:

- **SFT** fits the *express* actions of the target value: the model sees the scene and learns to
  answer with the value-expressing action.
- **DPO** (and the rest of the preference family in `vat.losses`) prefers, per (scene,
  micro-value), the express action (chosen) over the suppress action (rejected) for the same
  prompt.

Held-out (test) items are never read here. Examples are plain Python lists (`vat.data.collate` pads
them into tensors). Labels follow the Hugging Face convention that `vat.losses.sequence_logps`
reads: aligned with ``input_ids``, with `IGNORE_INDEX` on the prompt.
"""

from __future__ import annotations

import logging

from torch.utils.data import Dataset

from vat.data import placebo
from vat.data.items import ItemSet
from vat.data.prompt import TrainPrompt
from vat.data.schema import Item
from vat.losses import IGNORE_INDEX

__all__ = ["PreferenceDataset", "SFTDataset"]

log = logging.getLogger(__name__)


def _labels(prompt: list[int], response: list[int]) -> list[int]:
    return [IGNORE_INDEX] * len(prompt) + list(response)


def _warn_truncated(kind: str, n: int, total: int, max_length: int) -> None:
    if n:
        log.warning(
            "%s: %d of %d prompts were cut from the left to fit max_length=%d",
            kind, n, total, max_length,
        )  # fmt: skip


def _check_kind(kind: str, allowed: tuple[str, ...], what: str) -> None:
    if kind not in allowed:
        raise ValueError(f"method.train_data={kind!r} is not a {what} kind; expected one of "
                         f"{list(allowed)} (vat.data.placebo)")  # fmt: skip


class SFTDataset(Dataset):
    """The express actions of the target value in the train split, as SFT examples.

    ``train_data="neutral"`` is the SFT placebo (`vat.data.placebo.neutral_items`): the same items
    and prompts, each action replaced by a value-neutral one of the closest length.

    Each example is ``{"input_ids", "labels", "id", "index"}``: prompt + response ids, labels
    ``-100`` on the prompt and the response ids on the response, the item id and the position.
    Everything is tokenised up front, so a bad item (a response too long) fails at construction.
    """

    def __init__(self, items: ItemSet, target: str, tokenizer, prompt: TrainPrompt,
                 train_data: str = "target", placebo_seed: int = 0):  # fmt: skip
        _check_kind(train_data, placebo.SFT_KINDS, "SFT")
        self.prompt = prompt
        self.target = items.taxonomy.normalize_value(target)
        self.train_data = train_data
        # `.train()` keeps split == "train" only: held-out items are never trained on.
        self.items: tuple[Item, ...] = items.train(self.target).where(polarity="express").items
        if not self.items:
            raise ValueError(
                f"no train-split express items for value {self.target!r}; SFT has nothing to fit"
            )
        if train_data == "neutral":
            self.items = tuple(placebo.neutral_items(list(self.items), placebo_seed))
        self.examples: list[dict] = []
        n_cut = 0
        for i, it in enumerate(self.items):
            p, r, cut = self.prompt.encode_with_cut(tokenizer, it)
            n_cut += cut
            self.examples.append(
                {"input_ids": p + r, "labels": _labels(p, r), "id": it.id, "index": i}
            )
        _warn_truncated("SFT", n_cut, len(self.items), self.prompt.max_length)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return self.examples[i]


class PreferenceDataset(Dataset):
    """One (chosen = express, rejected = suppress) example per train pair of the target value.

    Pairs are `ItemSet.pairs` of the target's train items: same scene and micro-value, so both
    responses follow the same prompt. Each example is ``{"chosen_input_ids", "chosen_labels",
    "rejected_input_ids", "rejected_labels", "id", "index", "chosen_id", "rejected_id"}``; ``id`` is
    ``"{scene_id}/{micro_value}"`` (with ``#k`` appended to the k-th repeat of a group, so ids stay
    unique) and ``index`` the position, which keys precomputed reference log-probs.

    ``train_data`` selects a placebo (`vat.data.placebo`): ``"shuffled"`` swaps chosen and rejected
    in a seeded half of the target's pairs, ``"mixed"`` takes as many pairs evenly from all values.

    ``anchor_per_pair = k > 0`` (tax-aware DPO, `vat.anchor`) adds ``k x N`` anchor pairs: train
    pairs of the nine other values, drawn evenly (seeded by ``placebo_seed``). They follow the
    target examples in `scored_examples` (``index`` N.., so their reference log-probs are
    precomputed and cached with the target's) and each target example carries its k anchors
    (``anchors``: anchor j goes with example ``j mod N``); the collator appends them to the batch.
    """

    def __init__(self, items: ItemSet, target: str, tokenizer, prompt: TrainPrompt,
                 train_data: str = "target", placebo_seed: int = 0,
                 anchor_per_pair: int = 0):  # fmt: skip
        _check_kind(train_data, placebo.PREFERENCE_KINDS, "preference")
        self.prompt = prompt
        self.value_names = items.taxonomy.value_names  # a pair's "value" is its index here
        self.target = items.taxonomy.normalize_value(target)
        self.train_data = train_data
        self.pairs: list[tuple[Item, Item]] = items.train(self.target).pairs()
        if not self.pairs:
            raise ValueError(
                f"no train-split (express, suppress) pairs for value {self.target!r}; "
                "preference training has nothing to compare"
            )
        self.swapped = [False] * len(self.pairs)
        if train_data == "shuffled":
            self.pairs, self.swapped = placebo.shuffled_pairs(self.pairs, placebo_seed)
        elif train_data == "mixed":
            self.pairs = placebo.mixed_pairs(items, len(self.pairs), placebo_seed)
        if not (isinstance(anchor_per_pair, int) and anchor_per_pair >= 0):
            raise ValueError(
                f"method.anchor_per_pair must be an integer >= 0, got {anchor_per_pair!r}"
            )
        n = len(self.pairs)
        self.anchor_pairs: list[tuple[Item, Item]] = (
            placebo.mixed_pairs(items, anchor_per_pair * n, placebo_seed, exclude=(self.target,),
                                kind="anchor") if anchor_per_pair else [])  # fmt: skip
        self.examples = self._encode(tokenizer, self.pairs, 0)
        self.anchor_examples = self._encode(tokenizer, self.anchor_pairs, n)

    def _encode(self, tokenizer, pairs: list[tuple[Item, Item]], start: int) -> list[dict]:
        out: list[dict] = []
        seen: dict[str, int] = {}
        n_cut = 0
        for i, (c, r) in enumerate(pairs):
            p, cr, rr, cut = self.prompt.encode_preference_with_cut(tokenizer, c, r)
            n_cut += cut
            key = f"{c.scene_id}/{c.micro_value}"
            k = seen.get(key, 0)
            seen[key] = k + 1
            out.append(
                {
                    "chosen_input_ids": p + cr,
                    "chosen_labels": _labels(p, cr),
                    "rejected_input_ids": p + rr,
                    "rejected_labels": _labels(p, rr),
                    "id": key if k == 0 else f"{key}#{k}",
                    "index": start + i,
                    "chosen_id": c.id,
                    "rejected_id": r.id,
                    "value": self.value_names.index(c.value),
                }
            )
        _warn_truncated("preference", n_cut, len(pairs), self.prompt.max_length)
        return out

    @property
    def scored_examples(self) -> list[dict]:
        """Every pair the training step scores: the target's, then the anchors (by ``index``)."""
        return self.examples + self.anchor_examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        if self.anchor_examples:
            n = len(self.examples)  # anchor j goes with example j mod N
            return {**self.examples[i], "anchors": self.anchor_examples[i::n]}
        return self.examples[i]
