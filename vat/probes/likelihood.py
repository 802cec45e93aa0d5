"""The likelihood probe: does the model prefer the express action of a pair to the suppress one?

For each (express, suppress) pair of a held-out (scene, micro-value), after a context that names
the scene and the micro-value:

    margin = mean_t log p(express tokens | context) - mean_t log p(suppress tokens | context)

(``normalize="sum"`` uses summed instead of per-token log-probs). A positive margin means the model
leans toward acting on the value. Works for any causal LM, the untrained tiny model included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vat.data import ItemSet
from vat.forward import encode_pair
from vat.probes.base import ProbeResult, PromptContext, ScoringSettings, items_frame, pair_table
from vat.probes.scoring import Request
from vat.prompts import fields, render, system_text


@dataclass
class LikelihoodProbe(ScoringSettings):
    # `_target_` is a field so that this dataclass is also the config schema (conf/probe/).
    _target_: str = "vat.probes.LikelihoodProbe"
    context_template: str = (
        "Scenario: {scenario}\nWhat matters most to me here: {micro_label} ({gloss}).\nWhat I do:"
    )
    action_template: str = " {action}"
    use_chat_template: bool = False
    normalize: str = "mean"  # mean | sum

    name = "likelihood"

    def __post_init__(self):
        if self.normalize not in ("mean", "sum"):
            raise ValueError(f"probe.normalize must be 'mean' or 'sum', got {self.normalize!r}")
        for key in ("{scenario}", "{micro_label}"):
            if key not in self.context_template:
                raise ValueError(f"probe.context_template must contain {key}")
        if "{action}" not in self.action_template:
            raise ValueError("probe.action_template must contain {action}")

    def texts(
        self, tokenizer, items: ItemSet, ctx: PromptContext | None = None
    ) -> list[tuple[str, str]]:
        """(context, continuation) strings per item, as lm-evaluation-harness would take them."""
        shots = [
            (
                self.context_template.format(**fields(s, a, m, items.taxonomy)),
                self.action_template.format(action=a).strip(),
            )
            for s, a, m in (ctx.examples if ctx else [])
        ]
        out = []
        for it in items:
            f = fields(it.scenario, it.action, it.micro_value, items.taxonomy)
            context = render(
                tokenizer, shots, self.context_template.format(**f), self.use_chat_template,
                system_text(ctx), plain_answer_prefix=" ",
            )  # fmt: skip
            out.append((context, self.action_template.format(**f)))
        return out

    def requests(
        self, tokenizer, items: ItemSet, ctx: PromptContext | None = None
    ) -> list[Request]:
        """One request per item, grouped by scene: the context up to the action is the same for
        all the items of a micro-value, and its scenario prefix for all the items of a scene."""
        reqs = []
        for it, (context, continuation) in zip(
            items, self.texts(tokenizer, items, ctx), strict=True
        ):
            c, x = encode_pair(tokenizer, context, continuation)
            reqs.append(Request(tuple(c), tuple(x), group=it.scene_id))
        return reqs

    def score(
        self, model, tokenizer, items: ItemSet, ctx: PromptContext | None = None
    ) -> ProbeResult:
        scorer = self.scorer(model, tokenizer)
        s = scorer.score(self.requests(tokenizer, items, ctx), desc="likelihood probe")
        pref = s.mean_logprob if self.normalize == "mean" else s.logprob
        df = items_frame(items, logprob=s.logprob, n_tokens=s.n_tokens, pref=pref)
        pairs = pair_table(df)  # one row per (scene, micro-value) with both actions' prefs
        units = pairs[["scene_id", "value", "micro_value"]].assign(
            score=pairs.express - pairs.suppress
        )
        meta = {"n_requests": len(df), "mean_pref": float(np.mean(pref))}
        return ProbeResult(self.name, df, units, meta, items.taxonomy)
