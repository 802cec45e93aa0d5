"""`TrainPrompt`: how an item becomes the (prompt, response) token ids a training loss reads.

The prompt shows only the scene (`TrainPrompt.template`); it never names the value, so a trained
model shows the value without being told to. The template, the chat-template switch and the length
limit have no defaults here: their one home is the ``prompt:`` node of ``conf/train.yaml``.

Tokenisation follows the likelihood probe exactly (`vat.forward.encode_pair`, the
lm-evaluation-harness split): trailing whitespace of the prompt text moves to the response, the
response is ``encode(prompt + action)`` minus the prompt's tokens, and no special tokens are added
beyond what the chat template writes. The log-probability a training loss computes for a response
is therefore the one the probe machinery computes for the same context and continuation (before
the EOS token that `TrainPrompt.add_eos` appends so that the model learns to stop). One visible
consequence: a chat template's generation prompt usually ends in whitespace (ChatML:
``<|im_start|>assistant\\n``), and that newline becomes the first response token, as it does for the
probe. It is the same token in a chosen and a rejected response, so it cancels in DPO.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from vat.data.schema import Item
from vat.forward import encode_pair
from vat.prompts import PLAIN_ANSWER_PREFIX, render

__all__ = ["TrainPrompt"]

# Bumped when the tokenisation changes in a way the fields do not show, so that fingerprints (and
# the precomputed DPO reference log-probs keyed on them) of older runs stop matching.
_ENCODING_VERSION = 1


def _value_name_pattern(taxonomy) -> re.Pattern[str]:
    """Whole-word, case-insensitive match of any of ``taxonomy``'s value labels in any spelling."""
    alts = []
    for v in taxonomy.values:
        # "Self-Direction", "self direction", "self_direction" all name the same value.
        words = re.split(r"[\s\-_]+", v.label)
        alts.append(r"[\s\-_]*".join(map(re.escape, words)))
    return re.compile(r"\b(?:" + "|".join(alts) + r")\b", re.IGNORECASE)


@dataclass
class TrainPrompt:
    """How an item becomes a (prompt, response) token pair for training.

    Args:
        template: the user turn; must contain ``{scenario}`` and no other field, and must not name a
            value of the taxonomy (`check_names`) (training teaches the value without telling the model which one).
        use_chat_template: render the template as the user turn of the tokenizer's chat template
            with the generation prompt; the action is the assistant reply. Base models without a
            chat template need ``False``.
        max_length: most tokens of prompt + response (EOS included). A longer prompt is cut from the
            left; the response is never cut.
        plain_answer_prefix: plain-text mode only: the text between the template and the action.
        add_eos: append the tokenizer's EOS token to the response, so the model learns to stop.
    """

    template: str
    use_chat_template: bool
    max_length: int
    plain_answer_prefix: str = PLAIN_ANSWER_PREFIX
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
        if self.max_length < 2:
            raise ValueError(f"train prompt max_length must be >= 2, got {self.max_length}")

    def check_names(self, taxonomy) -> None:
        """The template must not name a value of ``taxonomy`` (a `vat.taxonomy.Taxonomy`)."""
        named = _value_name_pattern(taxonomy).search(self.template)
        if named:
            raise ValueError(
                f"train prompt template names the value {named.group(0)!r}; training teaches the "
                "value without being told, so the template must not mention it"
            )

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

    def encode_with_cut(self, tokenizer, item: Item) -> tuple[list[int], list[int], bool]:
        """`encode`, and whether the prompt was cut to fit (the datasets count the cuts)."""
        text = self.prompt_text(tokenizer, item)
        prompt, response = self._response_ids(tokenizer, text, item.action)
        prompt, cut = self._fit(prompt, [(item.id, response)])
        return prompt, response, cut

    def encode_preference_with_cut(
        self, tokenizer, chosen: Item, rejected: Item
    ) -> tuple[list[int], list[int], list[int], bool]:
        """`encode_preference`, and whether the prompt was cut to fit."""
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
        prompt, response, _ = self.encode_with_cut(tokenizer, item)
        return prompt, response

    def encode_preference(
        self, tokenizer, chosen: Item, rejected: Item
    ) -> tuple[list[int], list[int], list[int]]:
        """(prompt ids, chosen response ids, rejected response ids) sharing one prompt.

        The prompt is cut to fit beside the longer response, so both sequences see the identical
        context (a DPO pair must differ in the response only).
        """
        prompt, c, r, _ = self.encode_preference_with_cut(tokenizer, chosen, rejected)
        return prompt, c, r

    def fingerprint(self) -> str:
        """A stable hash of the fields (a cache key for precomputed reference log-probs)."""
        blob = json.dumps(
            {"encoding_version": _ENCODING_VERSION, **asdict(self)},
            sort_keys=True,
            ensure_ascii=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
