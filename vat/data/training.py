"""Training data for value alignment: prompts, SFT and preference datasets, and their collators.

Training teaches one target Schwartz value from the train split of an `ItemSet`:

- **SFT** fits the *express* actions of the target value: the model sees the scene and learns to
  answer with the value-expressing action.
- **DPO** (and the rest of the preference family in `vat.losses`) prefers, per (scene,
  micro-value), the express action (chosen) over the suppress action (rejected) for the same
  prompt.

The prompt shows only the scene (`TrainPrompt.template`); it never names the value, so a trained
model shows the value without being told to. Held-out (test) items are never read here.

Tokenisation follows the likelihood probe exactly (`vat.probes.scoring.encode_pair`, the
lm-evaluation-harness split): trailing whitespace of the prompt text moves to the response, the
response is ``encode(prompt + action)`` minus the prompt's tokens, and no special tokens are added
beyond what the chat template writes. The log-probability a training loss computes for a response
is therefore the one the probe machinery computes for the same context and continuation (before
the EOS token that `TrainPrompt.add_eos` appends so that the model learns to stop). One visible
consequence: a chat template's generation prompt usually ends in whitespace (ChatML:
``<|im_start|>assistant\\n``), and that newline becomes the first response token, as it does for the
probe. It is the same token in a chosen and a rejected response, so it cancels in DPO.

Examples are plain Python lists; the collators pad them on the right into tensors. Labels follow the
Hugging Face convention that `vat.losses.sequence_logps` reads: aligned with ``input_ids``, with
``-100`` on the prompt and on padding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import Dataset

from vat import values as V
from vat.data import placebo
from vat.data.items import ItemSet
from vat.data.schema import Item
from vat.probes.prompts import render
from vat.probes.scoring import encode_pair

__all__ = [
    "IGNORE_INDEX",
    "PreferenceCollator",
    "PreferenceDataset",
    "SFTCollator",
    "SFTDataset",
    "TrainPrompt",
    "length_grouped_indices",
]

log = logging.getLogger(__name__)

# The label that PyTorch's cross entropy and `vat.losses` skip (same value as vat.losses).
IGNORE_INDEX = -100

# Bumped when the tokenisation changes in a way the fields do not show, so that fingerprints (and
# the precomputed DPO reference log-probs keyed on them) of older runs stop matching.
_ENCODING_VERSION = 1


def _value_name_pattern() -> re.Pattern[str]:
    """Whole-word, case-insensitive match of any basic value's label or name in any spelling."""
    alts = []
    for v in V.BASIC.values():
        # "Self-Direction", "self direction", "self_direction" all name the same value.
        words = re.split(r"[\s\-_]+", v.label)
        alts.append(r"[\s\-_]*".join(map(re.escape, words)))
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE)


_VALUE_NAME = _value_name_pattern()


@dataclass
class TrainPrompt:
    """How an item becomes a (prompt, response) token pair for training.

    Args:
        template: the user turn; must contain ``{scenario}`` and no other field, and must not name a
            Schwartz value (training teaches the value without telling the model which one).
        use_chat_template: render the template as the user turn of the tokenizer's chat template
            with the generation prompt; the action is the assistant reply. Base models without a
            chat template need ``False``.
        plain_answer_prefix: plain-text mode only: the text between the template and the action.
        max_length: most tokens of prompt + response (EOS included). A longer prompt is cut from the
            left; the response is never cut.
        add_eos: append the tokenizer's EOS token to the response, so the model learns to stop.
    """

    template: str = "Scenario: {scenario}\nWhat do you do?"
    use_chat_template: bool = True
    plain_answer_prefix: str = "\nAnswer: "
    max_length: int = 256
    add_eos: bool = True

    def __post_init__(self) -> None:
        names = {f for _, f, _, _ in string.Formatter().parse(self.template) if f is not None}
        if "scenario" not in names:
            raise ValueError(f"train prompt template must contain {{scenario}}: {self.template!r}")
        if names - {"scenario"}:
            raise ValueError(
                f"train prompt template may use only {{scenario}}, got fields {sorted(names)}; "
                "the training prompt must not carry the value, micro-value or action"
            )
        named = _VALUE_NAME.search(self.template)
        if named:
            raise ValueError(
                f"train prompt template names the value {named.group(0)!r}; training teaches the "
                "value without being told, so the template must not mention it"
            )
        if self.max_length < 2:
            raise ValueError(f"train prompt max_length must be >= 2, got {self.max_length}")

    # ---------------------------------------------------------------------------- text
    def user_text(self, item: Item) -> str:
        """The user turn for an item: the template filled with its scenario."""
        return self.template.format(scenario=item.scenario)

    def prompt_text(self, tokenizer, item: Item) -> str:
        """The full context text before the action (chat template applied, or plain text)."""
        if self.use_chat_template:
            if getattr(tokenizer, "chat_template", None) is None:
                raise ValueError(
                    "train prompt use_chat_template=true but this tokenizer has no chat template; "
                    "set use_chat_template=false for base models"
                )
            return render(tokenizer, [], self.user_text(item), True, None)
        # Not `render`'s plain mode: that strips the prefix's trailing space. Here the space stays in
        # the text and `encode_pair` moves it to the response, as the lm-eval split does.
        return self.user_text(item) + self.plain_answer_prefix

    # ---------------------------------------------------------------------------- tokens
    def _eos(self, tokenizer) -> list[int]:
        if not self.add_eos:
            return []
        if tokenizer.eos_token_id is None:
            raise ValueError("train prompt add_eos=true but the tokenizer has no eos token")
        return [int(tokenizer.eos_token_id)]

    def _response_ids(self, tokenizer, text: str, action: str) -> tuple[list[int], list[int]]:
        prompt, response = encode_pair(tokenizer, text, action)
        return list(prompt), list(response) + self._eos(tokenizer)

    def _fit(
        self, prompt: list[int], responses: Sequence[tuple[str, list[int]]]
    ) -> tuple[list[int], bool]:
        """The prompt cut from the left to fit beside the longest response, and whether it was cut.

        At least one prompt token must remain: the first response token is predicted from the last
        prompt token, so a response with no prompt left would lose its first target.
        """
        for item_id, r in responses:
            if len(r) >= self.max_length:
                raise ValueError(
                    f"item {item_id!r}: the response is {len(r)} tokens (with eos) and "
                    f"max_length={self.max_length} leaves no room for the prompt; raise max_length "
                    "(the response is never truncated)"
                )
        room = self.max_length - max(len(r) for _, r in responses)
        return (prompt[-room:], True) if len(prompt) > room else (prompt, False)

    def _encode(self, tokenizer, item: Item) -> tuple[list[int], list[int], bool]:
        text = self.prompt_text(tokenizer, item)
        prompt, response = self._response_ids(tokenizer, text, item.action)
        prompt, cut = self._fit(prompt, [(item.id, response)])
        return prompt, response, cut

    def _encode_preference(
        self, tokenizer, chosen: Item, rejected: Item
    ) -> tuple[list[int], list[int], list[int], bool]:
        if chosen.scenario != rejected.scenario:
            raise ValueError(
                f"preference pair {chosen.id!r} / {rejected.id!r}: different scenarios; a pair "
                "must share its prompt"
            )
        text = self.prompt_text(tokenizer, chosen)
        prompt, c = self._response_ids(tokenizer, text, chosen.action)
        _, r = self._response_ids(tokenizer, text, rejected.action)
        # The context ids depend on the context text only, so one prompt serves both responses.
        prompt, cut = self._fit(prompt, [(chosen.id, c), (rejected.id, r)])
        return prompt, c, r, cut

    def encode(self, tokenizer, item: Item) -> tuple[list[int], list[int]]:
        """(prompt ids, response ids) for an item: `encode_pair` of its prompt and action, + EOS.

        The prompt is cut from the left when prompt + response exceed `max_length`.
        """
        prompt, response, _ = self._encode(tokenizer, item)
        return prompt, response

    def encode_preference(
        self, tokenizer, chosen: Item, rejected: Item
    ) -> tuple[list[int], list[int], list[int]]:
        """(prompt ids, chosen response ids, rejected response ids) sharing one prompt.

        The prompt is cut to fit beside the longer response, so both sequences see the identical
        context (a DPO pair must differ in the response only).
        """
        prompt, c, r, _ = self._encode_preference(tokenizer, chosen, rejected)
        return prompt, c, r

    def fingerprint(self) -> str:
        """A stable hash of the fields (a cache key for precomputed reference log-probs)."""
        blob = json.dumps(
            {"encoding_version": _ENCODING_VERSION, **asdict(self)},
            sort_keys=True,
            ensure_ascii=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


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

    def __init__(self, items: ItemSet, target: str, tokenizer, prompt: TrainPrompt | None = None,
                 train_data: str = "target", placebo_seed: int = 0):  # fmt: skip
        _check_kind(train_data, placebo.SFT_KINDS, "SFT")
        self.prompt = prompt or TrainPrompt()
        self.target = V.normalize_value(target)
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
            p, r, cut = self.prompt._encode(tokenizer, it)
            n_cut += cut
            self.examples.append(
                {"input_ids": p + r, "labels": _labels(p, r), "id": it.id, "index": i}
            )
        _warn_truncated("SFT", n_cut, len(self.items), self.prompt.max_length)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        return self.examples[i]

    @property
    def lengths(self) -> list[int]:
        """Token length of each example (for length-grouped batching)."""
        return [len(e["input_ids"]) for e in self.examples]


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

    def __init__(self, items: ItemSet, target: str, tokenizer, prompt: TrainPrompt | None = None,
                 train_data: str = "target", placebo_seed: int = 0,
                 anchor_per_pair: int = 0):  # fmt: skip
        _check_kind(train_data, placebo.PREFERENCE_KINDS, "preference")
        self.prompt = prompt or TrainPrompt()
        self.target = V.normalize_value(target)
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
            p, cr, rr, cut = self.prompt._encode_preference(tokenizer, c, r)
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
                    "value": V.BASIC_VALUES.index(V.normalize_value(c.value)),
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

    @property
    def lengths(self) -> list[int]:
        """Longer of the two sequences of each pair (for length-grouped batching)."""
        return [
            max(len(e["chosen_input_ids"]), len(e["rejected_input_ids"])) for e in self.examples
        ]


# --------------------------------------------------------------------------------- collators
def _pad_right(
    seqs: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_token_id: int,
    pad_to_multiple_of: int | None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    width = max(len(s) for s in seqs)
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    n = len(seqs)
    ids = torch.full((n, width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    lab = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for row, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        if len(s) != len(y):
            raise ValueError(f"row {row}: {len(s)} input ids but {len(y)} labels")
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[row, : len(s)] = 1
        lab[row, : len(y)] = torch.tensor(y, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": lab}


class _Collator:
    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        if pad_token_id is None:
            raise ValueError("collator needs a pad_token_id (the tokenizer has no pad token)")
        if pad_to_multiple_of is not None and pad_to_multiple_of < 1:
            raise ValueError(f"pad_to_multiple_of must be >= 1 or None, got {pad_to_multiple_of}")
        self.pad_token_id = int(pad_token_id)
        self.pad_to_multiple_of = pad_to_multiple_of

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pad_token_id={self.pad_token_id}, "
            f"pad_to_multiple_of={self.pad_to_multiple_of})"
        )


class SFTCollator(_Collator):
    """SFT examples -> ``input_ids``, ``attention_mask``, ``labels`` (B, L), right-padded.

    Padding gets ``attention_mask`` 0 and label ``-100``; ``index`` (B,) is added when the examples
    have one.
    """

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        out = _pad_right(
            [e["input_ids"] for e in examples], [e["labels"] for e in examples],
            self.pad_token_id, self.pad_to_multiple_of,
        )  # fmt: skip
        if all("index" in e for e in examples):
            out["index"] = torch.tensor([e["index"] for e in examples], dtype=torch.long)
        return out


class PreferenceCollator(_Collator):
    """Preference examples -> one concatenated, right-padded batch for a single forward pass.

    ``input_ids``, ``attention_mask``, ``labels`` are (2B, L): rows ``0..B-1`` the chosen sequences,
    rows ``B..2B-1`` the rejected ones in the same order, padded to one common L. ``index`` (B,) is
    the examples' positions in the dataset.

    When every pair shares its prompt (as `PreferenceDataset` builds them), the batch also holds the
    same pairs with the prompt once (`pack_pairs`: the ``packed_*`` fields), which `DPOModule` runs
    instead: ``P + Rc + Rr`` tokens per pair instead of ``2P + Rc + Rr``.
    """

    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        anchored = any("anchors" in e for e in examples)
        if anchored:  # tax-aware DPO: each example's anchor pairs follow the target pairs
            n_target = len(examples)
            examples = [*examples, *(a for e in examples for a in e.get("anchors", ()))]
        seqs = [e["chosen_input_ids"] for e in examples] + [
            e["rejected_input_ids"] for e in examples
        ]
        labels = [e["chosen_labels"] for e in examples] + [e["rejected_labels"] for e in examples]
        out = _pad_right(seqs, labels, self.pad_token_id, self.pad_to_multiple_of)
        out["index"] = torch.tensor([e["index"] for e in examples], dtype=torch.long)
        if anchored:
            out["is_anchor"] = torch.arange(len(examples)) >= n_target
            out["pair_value"] = torch.tensor([e["value"] for e in examples], dtype=torch.long)
        out.update(pack_pairs(examples, self.pad_token_id, self.pad_to_multiple_of))
        return out


def _shared_prompt(e: dict) -> tuple[list[int], list[int], list[int]] | None:
    """(prompt, chosen response, rejected response) of an example whose two sequences are one prompt
    (labels ``-100``) followed by a fully labelled response; None for any other layout."""
    ids_c, lab_c, ids_r, lab_r = (e["chosen_input_ids"], e["chosen_labels"],
                                  e["rejected_input_ids"], e["rejected_labels"])  # fmt: skip
    n = next((i for i, y in enumerate(lab_c) if y != IGNORE_INDEX), len(lab_c))
    if n == 0 or ids_r[:n] != ids_c[:n] or lab_r[:n] != lab_c[:n]:
        return None  # no prompt (the first response token would have no context) or not shared
    if lab_c[n:] != ids_c[n:] or lab_r[n:] != ids_r[n:]:
        return None  # a response with unlabelled tokens
    return ids_c[:n], ids_c[n:], ids_r[n:]


def pack_pairs(
    examples: Sequence[dict], pad_token_id: int, pad_to_multiple_of: int | None = None
) -> dict[str, torch.Tensor]:
    """The pairs with their shared prompt once: row i is ``prompt + chosen + rejected``.

    A causal model scores both responses in one pass when the rejected tokens do not see the chosen
    ones and continue the prompt's positions. Fields (B pairs, T the longest packed row, N the
    response tokens of the batch), all built here on the host so the training step needs no sync:

    - ``packed_input_ids`` (B, T), right-padded with ``pad_token_id``;
    - ``packed_position_ids`` (B, T): ``0..P-1`` on the prompt, ``P..`` on the chosen response and
      again ``P..`` on the rejected one;
    - ``packed_segment`` (B, T) int8: 0 prompt, 1 chosen, 2 rejected, -1 padding (the attention
      mask is built from it: causal, no padding, rejected never attends to chosen);
    - ``target_row``, ``target_pos``, ``target_ids`` (N,): each response token, the packed row and
      position whose hidden state predicts it (the first rejected token is predicted from the last
      prompt token), and its id;
    - ``target_slot`` (N,): its place in the (2B, R) grid of response tokens, chosen rows first
      (``row * R + k``), and ``response_mask`` (2B, R) bool: the grid's real tokens.

    Empty (no fields) when a pair does not share its prompt: the model then runs the plain
    (2B, L) batch.
    """
    parts = [_shared_prompt(e) for e in examples]
    if not parts or any(p is None for p in parts):
        return {}
    b = len(parts)
    rows, pos, seg, t_row, t_pos, t_ids, t_seq, t_k = [], [], [], [], [], [], [], []
    for i, (p, c, r) in enumerate(parts):
        n, nc, nr = len(p), len(c), len(r)
        rows.append(p + c + r)
        pos.append([*range(n + nc), *range(n, n + nr)])
        seg.append([0] * n + [1] * nc + [2] * nr)
        t_row += [i] * (nc + nr)
        t_pos += [*range(n - 1, n + nc - 1), n - 1, *range(n + nc, n + nc + nr - 1)]
        t_ids += c + r
        t_seq += [i] * nc + [b + i] * nr
        t_k += [*range(nc), *range(nr)]
    width = max(map(len, rows))
    if pad_to_multiple_of:
        width = -(-width // pad_to_multiple_of) * pad_to_multiple_of
    grid = max(max(len(c), len(r)) for _, c, r in parts)
    ids = torch.full((b, width), pad_token_id, dtype=torch.long)
    position = torch.zeros((b, width), dtype=torch.long)
    segment = torch.full((b, width), -1, dtype=torch.int8)
    for i, (row, ps, sg) in enumerate(zip(rows, pos, seg, strict=True)):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        position[i, : len(row)] = torch.tensor(ps, dtype=torch.long)
        segment[i, : len(row)] = torch.tensor(sg, dtype=torch.int8)
    seq, k = torch.tensor(t_seq, dtype=torch.long), torch.tensor(t_k, dtype=torch.long)
    response_mask = torch.zeros((2 * b, grid), dtype=torch.bool)
    response_mask[seq, k] = True
    return {
        "packed_input_ids": ids,
        "packed_position_ids": position,
        "packed_segment": segment,
        "target_row": torch.tensor(t_row, dtype=torch.long),
        "target_pos": torch.tensor(t_pos, dtype=torch.long),
        "target_ids": torch.tensor(t_ids, dtype=torch.long),
        "target_slot": seq * grid + k,
        "response_mask": response_mask,
    }


def length_grouped_indices(
    lengths: Sequence[int], batch_size: int, seed: int, mega: int = 50
) -> list[int]:
    """A shuffled order in which each batch holds examples of similar length (less padding).

    The indices are shuffled with `seed`, cut into chunks of ``mega * batch_size``, and each chunk
    is sorted by length (longest first), so consecutive `batch_size` slices are length-homogeneous
    while the order stays random across chunks. The batch holding the longest example goes first,
    so an out-of-memory shows at once. Deterministic for a given seed.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx = list(range(len(lengths)))
    random.Random(seed).shuffle(idx)
    size = max(1, mega * batch_size)
    order = [
        i
        for s in range(0, len(idx), size)
        for i in sorted(idx[s : s + size], key=lambda j: -lengths[j])
    ]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if batches:
        top = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches[0], batches[top] = batches[top], batches[0]
    return [i for b in batches for i in b]


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch), and shards it across ranks.

    Lightning calls `set_epoch` at the start of every epoch (as for `DistributedSampler`), so a run
    resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen. Under
    several processes (torch.distributed initialised) rank r takes every world-th index of the
    same permutation from r on (wrapping round to equal lengths, as `DistributedSampler` does): the
    ranks' micro-batches of one optimizer step then hold exactly the examples a single process sees
    in that step, so the run does not depend on the number of devices. (Lightning's own sampler
    wrapper would shuffle once more on top: the Trainer gets ``use_distributed_sampler=False``.)
    """

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0
        self.consumed = 0  # this rank's examples of the current epoch that training has taken
        self._skip = 0  # examples to skip at the next iteration (resumed in the middle of an epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._skip = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        """Resume where a checkpoint was saved: the same epoch's permutation, minus what was taken."""
        self.epoch, self._skip = int(state["epoch"]), int(state["consumed"])

    @staticmethod
    def _shard() -> tuple[int, int]:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        rank, world = self._shard()
        perm += perm[: len(self) * world - self.n]
        skip, self._skip = self._skip, 0
        self.consumed = skip
        return iter(perm[rank::world][skip:])

    def __len__(self) -> int:
        return -(-self.n // self._shard()[1])


class ResumableDataLoader(torch.utils.data.DataLoader):
    """A `DataLoader` whose position inside an epoch is saved in Lightning checkpoints.

    Lightning saves ``state_dict()`` of a loader that has one and restores it before iterating, so
    a run resumed from a checkpoint taken in the middle of an epoch continues with the next batch
    an uninterrupted run would have taken (a plain DataLoader would restart the epoch, and the
    resumed run would differ). The position is the sampler's count of examples the training step
    has taken (`PolicyModule` counts at each batch start), not what the loader has yielded, which
    runs ahead of training by the prefetched batch.
    """

    def __init__(self, dataset, *, sampler: EpochShuffleSampler, **kwargs):
        super().__init__(dataset, sampler=sampler, **kwargs)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
