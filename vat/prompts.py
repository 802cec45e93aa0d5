"""Prompt rendering shared by the probes and the training data: plain text or the chat template.

This module sits below `vat.data` and `vat.probes` and imports neither, so both can build on it.
"""

from __future__ import annotations

#: Plain-text mode (no chat template): the text between a question and its answer.
PLAIN_ANSWER_PREFIX = "\nAnswer: "


def fields(scenario: str, action: str, micro_value: str, taxonomy, k: int | None = None) -> dict:
    """The fields a probe template may name: the item's texts and its (micro-)value's labels in
    ``taxonomy`` (a `vat.taxonomy.Taxonomy`)."""
    m = taxonomy.micro_value(micro_value)
    v = taxonomy.value(m.value)
    out = {
        "scenario": scenario,
        "action": action,
        "micro_label": m.label,
        "micro_value": m.name,
        "gloss": m.gloss,
        "value_label": v.label,
        "value_goal": v.goal,
    }
    if k is not None:
        out["k"] = k
    return out


def render(tokenizer, turns: list[tuple[str, str]], final_user: str, use_chat: bool,
           system: str | None, plain_answer_prefix: str = "") -> str:  # fmt: skip
    """The context text for a final user message after example turns [(user, assistant), ...].

    With `use_chat` the tokenizer's chat template renders system, example turns and the final user
    message with the generation prompt; otherwise plain text blocks separated by blank lines, each
    answer after `plain_answer_prefix`.
    """
    if use_chat:
        if tokenizer.chat_template is None:
            raise ValueError(
                "probe.use_chat_template=true but this tokenizer has no chat template; "
                "set probe.use_chat_template=false for base models"
            )
        msgs = [{"role": "system", "content": system}] if system else []
        for u, a in turns:
            msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
        msgs.append({"role": "user", "content": final_user})
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    parts = [system] if system else []
    parts += [f"{u}{plain_answer_prefix}{a}" for u, a in turns]
    parts.append(final_user + plain_answer_prefix.rstrip(" "))
    return "\n\n".join(parts)


def system_text(ctx) -> str | None:
    """The system prompt of a `vat.probes.base.PromptContext`, or None when there is no context.

    (Not annotated with the class: importing `vat.probes` here would close the import cycle this
    module exists to break.)
    """
    return ctx.system if ctx is not None else None
