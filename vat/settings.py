"""Settings that check themselves: each rule on a config key is written once, here or in the type
that owns the key, and every place that needs it runs that one rule.

- A **choice** (`Choice`, a `StrEnum`) types a schema field: OmegaConf refuses any other value when
  Hydra composes the config, naming the key and the options. `Choice.parse` is the same rule for a
  Python caller that passes a plain string.
- A **range** is a `Rule` (a test and what is expected). A settings dataclass (`Settings`) lists
  its rules in ``RULES`` and checks its fields in ``__post_init__``: `vat.preflight` builds the
  dataclass from the config node before anything loads, the code builds it before it computes.

Every message reads ``<key>=<value>: expected <what>``; `SettingsError` holds one per bad field,
so all of them are told at once.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import fields
from enum import StrEnum
from numbers import Integral, Real
from typing import Any, ClassVar, NamedTuple


class SettingsError(ValueError):
    """One or more settings outside their options or range; ``problems`` lists each as
    ``<key>=<value>: expected <what>`` (keys relative to the settings object)."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


class Choice(StrEnum):
    """A choice field's options (member name = value, as OmegaConf matches a config string to a
    member by name). A member is a `str`: it compares, hashes, formats and serialises to JSON as
    its value."""

    @classmethod
    def options(cls) -> str:
        return ", ".join(cls)

    @classmethod
    def problem(cls, key: str, value: Any) -> str | None:
        return (
            None
            if value in tuple(cls)
            else f"{key}={_show(value)}: expected one of {cls.options()}"
        )

    @classmethod
    def parse(cls, value: Any, key: str) -> Choice:
        """``value`` as a member; `SettingsError` naming ``key`` and the options otherwise."""
        problem = cls.problem(key, value)
        if problem:
            raise SettingsError([problem])
        return cls(value)


class Rule(NamedTuple):
    """A range rule: ``ok(value)`` and what is expected, e.g. ``"an integer >= 0"``."""

    ok: Callable[[Any], bool]
    expected: str

    def problem(self, key: str, value: Any) -> str | None:
        return None if self.ok(value) else f"{key}={_show(value)}: expected {self.expected}"

    def check(self, key: str, value: Any) -> None:
        problem = self.problem(key, value)
        if problem:
            raise SettingsError([problem])


def number(lo: float | None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False, finite: bool = False):  # fmt: skip
    """A test for a number in ``[lo, hi]`` (an end open or absent as asked); a bool is no number."""

    def ok(x: Any) -> bool:
        if isinstance(x, bool) or not isinstance(x, Integral if integer else Real):
            return False
        if finite and not math.isfinite(x):
            return False
        if lo is not None and not (x > lo if lo_open else x >= lo):  # NaN fails here
            return False
        return not (hi is not None and not (x < hi if hi_open else x <= hi))

    return ok


#: An integer >= 0 (resample and permutation counts).
COUNT = Rule(number(0, integer=True), "an integer >= 0")


class Settings:
    """Mixin for a settings dataclass: ``__post_init__`` turns each `Choice`-typed field given as a
    string into its member and checks every field named in ``RULES``; all problems at once."""

    RULES: ClassVar[dict[str, Rule]] = {}

    def __post_init__(self) -> None:
        problems = []
        hints = typing.get_type_hints(type(self))
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            choice = _choice_of(hints.get(f.name))
            if choice is not None and not (value is None and _optional(hints[f.name])):
                problem = choice.problem(f.name, value)
                if problem:
                    problems.append(problem)
                else:
                    setattr(self, f.name, choice(value))
            if f.name in self.RULES:
                problem = self.RULES[f.name].problem(f.name, value)
                if problem:
                    problems.append(problem)
        if problems:
            raise SettingsError(problems)


def _choice_of(hint: Any) -> type[Choice] | None:
    args = typing.get_args(hint) or (hint,)
    return next((a for a in args if isinstance(a, type) and issubclass(a, Choice)), None)


def _optional(hint: Any) -> bool:
    return type(None) in typing.get_args(hint)
