"""Collators: training examples (`vat.data.datasets`) -> right-padded tensor batches.

Padding gets ``attention_mask`` 0 and label `IGNORE_INDEX`. `PreferenceCollator` also packs each
pair with its shared prompt once (`pack_pairs`), which `vat.modules.dpo.DPOModule` runs instead of
the two full sequences.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from vat.losses import IGNORE_INDEX

__all__ = ["PreferenceCollator", "SFTCollator", "pack_pairs"]


def _pad_rows(
    rows: Sequence[Sequence[int]], value: int, pad_to_multiple_of: int | None = None,
    dtype: torch.dtype = torch.long,
) -> torch.Tensor:  # fmt: skip
    """``rows`` as one (N, W) tensor, each row padded on the right with ``value``; W is the longest
    row's length, rounded up to a multiple of ``pad_to_multiple_of`` when given."""
    out = pad_sequence(
        [torch.tensor(r, dtype=dtype) for r in rows], batch_first=True, padding_value=value
    )
    if pad_to_multiple_of:
        out = F.pad(out, (0, -out.shape[1] % pad_to_multiple_of), value=value)
    return out


def _pad_batch(
    seqs: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_token_id: int,
    pad_to_multiple_of: int | None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """``input_ids``, ``attention_mask`` and ``labels`` (N, W) of sequences and their labels."""
    for row, (s, y) in enumerate(zip(seqs, labels, strict=True)):
        if len(s) != len(y):
            raise ValueError(f"row {row}: {len(s)} input ids but {len(y)} labels")
    return {
        "input_ids": _pad_rows(seqs, pad_token_id, pad_to_multiple_of),
        "attention_mask": _pad_rows([[1] * len(s) for s in seqs], 0, pad_to_multiple_of),
        "labels": _pad_rows(labels, IGNORE_INDEX, pad_to_multiple_of),
    }


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
        out = _pad_batch(
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
        out = _pad_batch(seqs, labels, self.pad_token_id, self.pad_to_multiple_of)
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
    grid = max(max(len(c), len(r)) for _, c, r in parts)
    seq, k = torch.tensor(t_seq, dtype=torch.long), torch.tensor(t_k, dtype=torch.long)
    response_mask = torch.zeros((2 * b, grid), dtype=torch.bool)
    response_mask[seq, k] = True
    return {
        "packed_input_ids": _pad_rows(rows, pad_token_id, pad_to_multiple_of),
        "packed_position_ids": _pad_rows(pos, 0, pad_to_multiple_of),
        "packed_segment": _pad_rows(seg, -1, pad_to_multiple_of, dtype=torch.int8),
        "target_row": torch.tensor(t_row, dtype=torch.long),
        "target_pos": torch.tensor(t_pos, dtype=torch.long),
        "target_ids": torch.tensor(t_ids, dtype=torch.long),
        "target_slot": seq * grid + k,
        "response_mask": response_mask,
    }
