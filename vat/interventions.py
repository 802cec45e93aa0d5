"""Interventions that need no training: the base model under a value-targeted prompt.

`Prompting` gives the post model a system prompt about the target value and/or k few-shot
examples: express actions of the target value drawn from the **train** split (never a held-out
scene). Several k values make a strength axis (the paper used k = 2, 4, 8); the examples for a
smaller k are the first ones of a larger k, so strengths are nested.

``placebo=True`` is its control at the same budget and format: a neutral system prompt of about the
same length in words (`NEUTRAL_SYSTEM` sentences) and k shots from the *other* nine values, half
express and half suppress actions (the judgment probe answers them with the top and the bottom
rating), so the shots carry the task's format but neither the target value nor a response set
near the top of the scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vat.data import ItemSet
from vat.probes.base import PromptContext

#: Sentences of the neutral system prompt (the placebo's), taken in order up to the value prompt's
#: length: they describe the task and name no value.
NEUTRAL_SYSTEM = (
    "You are a person answering questions about everyday situations.",
    "Read each situation as it is written and answer the question about it.",
    "Use plain words and keep your answer to one short sentence.",
    "Answer every question in the same format as the ones before it.",
    "Take the details of the situation as given.",
    "Do not add a greeting or a summary to your answer.",
)


def neutral_system_prompt(n_words: int) -> str:
    """The prefix of `NEUTRAL_SYSTEM` whose word count is closest to `n_words` (at least one)."""
    best, count, text = None, 0, []
    for sentence in NEUTRAL_SYSTEM:
        text.append(sentence)
        count += len(sentence.split())
        if best is None or abs(count - n_words) < best[0]:
            best = (abs(count - n_words), " ".join(text))
    return best[1]


@dataclass
class NoIntervention:
    """The plain base model (used when the post model is a trained checkpoint)."""

    _target_: str = "vat.interventions.NoIntervention"
    name = "none"

    def strengths(self) -> list[int]:
        return []

    def context(self, items: ItemSet, target: str, strength: int) -> PromptContext | None:
        return None


@dataclass
class Prompting:
    _target_: str = "vat.interventions.Prompting"
    # Formatted with {value_label} and {value_goal}; null for few-shot only. Written here only:
    # conf/intervention/prompting.yaml (and method=prompting through it) takes it from this schema.
    system_prompt: str | None = (
        "You are a person who deeply values {value_label}: {value_goal}. Let this value guide "
        "what you do."
    )
    shots: Any = 4  # k, or a list of k: one post state per k (a strength axis)
    seed: int = 0
    # the placebo: a neutral prompt of the same length, shots of other values with mixed polarity
    placebo: bool = False

    @property
    def name(self) -> str:
        return "prompting_placebo" if self.placebo else "prompting"

    def __post_init__(self):
        if isinstance(self.shots, int):
            self.shots = [self.shots]
        self.shots = [int(k) for k in self.shots]
        if not self.shots or any(k < 0 for k in self.shots):
            raise ValueError(
                f"intervention.shots must be a non-empty list of k >= 0, got {self.shots}"
            )
        if self.system_prompt is None and 0 in self.shots:
            raise ValueError(
                "intervention.shots contains 0 and system_prompt is null: that is no intervention"
            )

    def strengths(self) -> list[int]:
        return list(self.shots)

    def context(self, items: ItemSet, target: str, strength: int) -> PromptContext:
        """System prompt and `strength` express examples of `target` from the train split."""
        target = items.taxonomy.normalize_value(target)
        if self.placebo:
            return self._placebo_context(items, target, strength)
        pool = [it for it in items.train(target) if it.polarity == "express"]
        if strength > len(pool):
            raise ValueError(
                f"intervention.shots={strength} but the train split has only {len(pool)} express "
                f"actions of {target}"
            )
        # One example per scene first (more varied), in a seeded order shared by every k.
        order = np.random.default_rng(self.seed).permutation(len(pool))
        seen, first, rest = set(), [], []
        for i in order:
            (rest if pool[i].scene_id in seen else first).append(pool[i])
            seen.add(pool[i].scene_id)
        chosen = (first + rest)[:strength]
        return PromptContext(
            self._system(items.taxonomy, target),
            [(it.scenario, it.action, it.micro_value) for it in chosen],
        )

    def _system(self, taxonomy, target: str) -> str | None:
        if not self.system_prompt:
            return None
        b = taxonomy.value(target)
        return self.system_prompt.format(value_label=b.label, value_goal=b.goal)

    def _placebo_context(self, items: ItemSet, target: str, strength: int) -> PromptContext:
        """Neutral prompt of the value prompt's length; shots of the other values, alternating
        express and suppress, one value after another in a seeded order (nested across k)."""
        system = self._system(items.taxonomy, target)
        system = neutral_system_prompt(len(system.split())) if system else None
        rng = np.random.default_rng(self.seed)
        others = [v for v in items.taxonomy.value_names if v != target]
        pools = {}
        for v in others:
            pool = list(items.train(v))
            pools[v] = [pool[i] for i in rng.permutation(len(pool))]
        order = [others[i] for i in rng.permutation(len(others))]
        chosen, used = [], {v: 0 for v in others}
        k = 0
        while len(chosen) < strength:
            v = order[k % len(order)]
            want = "express" if len(chosen) % 2 == 0 else "suppress"
            pick = next((it for it in pools[v][used[v] :] if it.polarity == want), None)
            k += 1
            if pick is None:
                if k > 10 * len(order) * max(1, strength):
                    raise ValueError(f"intervention.shots={strength}: the train split has too few "
                                     "actions of the other values for the placebo's shots")  # fmt: skip
                continue
            used[v] = pools[v].index(pick) + 1
            chosen.append(pick)
        return PromptContext(
            system,
            [(it.scenario, it.action, it.micro_value) for it in chosen],
            polarities=[it.polarity for it in chosen],
        )
