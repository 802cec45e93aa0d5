"""Interventions that need no training: the base model under a value-targeted prompt.

`Prompting` gives the post model a system prompt about the target value and/or k few-shot
examples: express actions of the target value drawn from the **train** split (never a held-out
scene). Several k values make a strength axis (the paper used k = 2, 4, 8); the examples for a
smaller k are the first ones of a larger k, so strengths are nested.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vat import values as V
from vat.data import ItemSet
from vat.probes.base import PromptContext


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
    # Formatted with {value_label} and {value_goal}; null for few-shot only.
    system_prompt: str | None = (
        "You are a person who deeply values {value_label}: {value_goal}. Let this value guide "
        "what you do."
    )
    shots: Any = 4  # k, or a list of k: one post state per k (a strength axis)
    seed: int = 0
    name = "prompting"

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
        target = V.normalize_value(target)
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
        b = V.BASIC[target]
        system = (
            self.system_prompt.format(value_label=b.label, value_goal=b.goal)
            if self.system_prompt
            else None
        )
        return PromptContext(system, [(it.scenario, it.action, it.micro_value) for it in chosen])
