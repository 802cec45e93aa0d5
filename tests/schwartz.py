"""The Schwartz taxonomy as the tests use it: the bundled default, loaded once.

Tests may name Schwartz's values (vat/ may not: `tests/test_architecture.py`)."""

from vat.taxonomy import UnknownValueError, load_taxonomy

__all__ = ["SCHWARTZ", "UnknownValueError"]  # and the names below

SCHWARTZ = load_taxonomy("schwartz")
BASIC_VALUES = SCHWARTZ.value_names
MICRO_VALUES = SCHWARTZ.micro_names
HIGHER_ORDER = dict(SCHWARTZ.groups)
CIRCLE = SCHWARTZ.structure
normalize_value = SCHWARTZ.normalize_value
normalize_micro_value = SCHWARTZ.normalize_micro_value
basic_value_of = SCHWARTZ.value_of
micro_values_of = SCHWARTZ.micro_values_of


def angle(value: str, *, radians: bool = False) -> float:
    return CIRCLE.angle(SCHWARTZ.normalize_value(value), radians=radians)


BASIC = {v: SCHWARTZ.value(v) for v in BASIC_VALUES}
MICRO = {m: SCHWARTZ.micro_value(m) for m in MICRO_VALUES}
N_SLOTS = CIRCLE.n_slots


def slot(value: str) -> int:
    return CIRCLE.slot(SCHWARTZ.normalize_value(value))


def circumplex_distance(u: str, v: str) -> int:
    return CIRCLE.distance(SCHWARTZ.normalize_value(u), SCHWARTZ.normalize_value(v))
