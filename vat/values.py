"""The Schwartz value taxonomy that every `vat` metric is indexed by.

Ten basic values in circumplex order, the four higher-order dimensions, and the 56 Schwartz Value
Survey items ("micro-values") grouped under their basic value the way the VIA / Value Alignment Tax
data assign them. Names are canonicalised to snake_case (``self_direction``); any spelling that
differs only in case, spaces, hyphens or underscores resolves to the same value.

The circumplex puts the ten values on a circle. Conformity and Tradition share one slot, so there are
9 slots of 40 degrees each; the circular distance between two values is the number of slots between
them the short way round (0 to 4).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "BASIC_VALUES",
    "HIGHER_ORDER",
    "MICRO_VALUES",
    "N_SLOTS",
    "BasicValue",
    "MicroValue",
    "UnknownValueError",
    "angle",
    "basic_value_of",
    "circumplex_distance",
    "micro_values_of",
    "normalize_micro_value",
    "normalize_value",
    "slot",
]


@dataclass(frozen=True)
class MicroValue:
    """One Schwartz Value Survey item, e.g. ``helpful`` under ``benevolence``."""

    name: str  # canonical snake_case, e.g. "honoring_of_parents_and_elders"
    label: str  # display form, e.g. "Honoring of Parents and Elders"
    gloss: str  # the survey's short explanation
    value: str  # canonical basic value


@dataclass(frozen=True)
class BasicValue:
    name: str
    label: str
    goal: str  # motivational goal (Schwartz 1992, paraphrased)
    slot: int  # circumplex slot, 0..8


def canonical(name: str) -> str:
    """``"Self-Direction"``, ``"self direction"``, ``"SELF_DIRECTION"`` -> ``"self_direction"``."""
    return re.sub(r"[\s\-_']+", "_", str(name).strip().lower()).strip("_")


# (label, motivational goal, circumplex slot, [(micro label, gloss), ...]) in circumplex order.
_TAXONOMY: list[tuple[str, str, int, list[tuple[str, str]]]] = [
    ("Self-Direction", "independent thought and action: choosing, creating, exploring", 0, [
        ("Creativity", "uniqueness, imagination"),
        ("Curious", "interested in everything, exploring"),
        ("Freedom", "freedom of action and thought"),
        ("Choosing Own Goals", "selecting own purposes"),
        ("Independent", "self-reliant, self-sufficient"),
    ]),
    ("Stimulation", "excitement, novelty and challenge in life", 1, [
        ("Daring", "seeking adventure, risk"),
        ("A Varied Life", "filled with challenge, novelty, and change"),
        ("An Exciting Life", "stimulating experience"),
    ]),
    ("Hedonism", "pleasure and sensuous gratification for oneself", 2, [
        ("Pleasure", "gratification of desires"),
        ("Enjoying Life", "enjoying food, sex, leisure, etc."),
    ]),
    ("Achievement", "personal success through demonstrating competence by social standards", 3, [
        ("Successful", "achieving goals"),
        ("Capable", "competent, effective, efficient"),
        ("Ambitious", "hardworking, aspiring"),
        ("Influential", "having an impact on people and events"),
        ("Intelligent", "logical, thinking"),
        ("Self-Respect", "belief in one's own worth"),
    ]),
    ("Power", "social status and prestige, control or dominance over people and resources", 4, [
        ("Social Power", "control over others, dominance"),
        ("Authority", "the right to lead or command"),
        ("Wealth", "material possessions, money"),
        ("Preserving my Public Image", "protecting my 'face'"),
        ("Social Recognition", "respect, approval by others"),
    ]),
    ("Security", "safety, harmony and stability of society, of relationships, and of self", 5, [
        ("Clean", "neat, tidy"),
        ("National Security", "protection of my nation from enemies"),
        ("Social Order", "stability of society"),
        ("Family Security", "safety for loved ones"),
        ("Reciprocation of Favors", "avoidance of indebtedness"),
        ("Healthy", "not being sick physically or mentally"),
        ("Sense of Belonging", "feeling that others care about me"),
    ]),
    ("Conformity", "restraint of actions and impulses likely to upset others or violate norms", 6, [
        ("Politeness", "courtesy, good manners"),
        ("Honoring of Parents and Elders", "showing respect"),
        ("Obedient", "dutiful, meeting obligations"),
        ("Self-Discipline", "self-restraint, resistance to temptation"),
    ]),
    ("Tradition", "respect for and acceptance of the customs and ideas of one's culture", 6, [
        ("Devout", "holding to religious faith and belief"),
        ("Accepting my Portion in Life", "submitting to life's circumstances"),
        ("Humble", "modest, self-effacing"),
        ("Moderate", "avoiding extremes of feeling and action"),
        ("Respect for Tradition", "preservation of time-honored customs"),
        ("Detachment", "from worldly concerns"),
    ]),
    ("Benevolence", "preserving and enhancing the welfare of people one is close to", 7, [
        ("Helpful", "working for the welfare of others"),
        ("Honest", "genuine, sincere"),
        ("Forgiving", "willing to pardon others"),
        ("Loyal", "faithful to my friends, group"),
        ("Responsible", "dependable, reliable"),
        ("True Friendship", "close, supportive friends"),
        ("A Spiritual Life", "emphasis on spiritual not material matters"),
        ("Mature Love", "deep emotional and spiritual intimacy"),
        ("Meaning in Life", "a purpose in life"),
    ]),
    ("Universalism", "understanding, tolerance and protection of the welfare of all people and nature", 8, [
        ("Protecting the Environment", "preserving nature"),
        ("A World of Beauty", "beauty of nature and the arts"),
        ("Broad-Minded", "tolerant of different ideas and beliefs"),
        ("Social Justice", "correcting injustice, care for the weak"),
        ("Wisdom", "a mature understanding of life"),
        ("Equality", "equal opportunity for all"),
        ("A World at Peace", "free of war and conflict"),
        ("Inner Harmony", "at peace with myself"),
        ("Unity With Nature", "fitting into nature"),
    ]),
]  # fmt: skip

N_SLOTS = 9  # Conformity and Tradition share a slot
SLOT_DEGREES = 360.0 / N_SLOTS

#: The 10 basic values, canonical names, in circumplex order.
BASIC_VALUES: tuple[str, ...] = tuple(canonical(label) for label, *_ in _TAXONOMY)

BASIC: dict[str, BasicValue] = {
    canonical(label): BasicValue(canonical(label), label, goal, slot_)
    for label, goal, slot_, _ in _TAXONOMY
}

#: The 56 micro-values, canonical names, grouped by basic value in circumplex order.
MICRO: dict[str, MicroValue] = {
    canonical(m_label): MicroValue(canonical(m_label), m_label, gloss, canonical(label))
    for label, _, _, micros in _TAXONOMY
    for m_label, gloss in micros
}
MICRO_VALUES: tuple[str, ...] = tuple(MICRO)

#: Higher-order dimensions. Hedonism belongs to both Openness to Change and Self-Enhancement.
HIGHER_ORDER: dict[str, tuple[str, ...]] = {
    "openness_to_change": ("self_direction", "stimulation", "hedonism"),
    "self_enhancement": ("hedonism", "achievement", "power"),
    "conservation": ("security", "conformity", "tradition"),
    "self_transcendence": ("benevolence", "universalism"),
}


class UnknownValueError(ValueError):
    """A value or micro-value name that is not in the taxonomy; the message lists the valid names."""


def normalize_value(name: str) -> str:
    """Canonical basic-value name for any spelling; raises `UnknownValueError` listing the valid ones."""
    key = canonical(name)
    if key not in BASIC:
        raise UnknownValueError(
            f"unknown Schwartz value {name!r}; expected one of: {', '.join(BASIC_VALUES)}"
        )
    return key


def normalize_micro_value(name: str) -> str:
    """Canonical micro-value name for any spelling; raises `UnknownValueError` listing the valid ones."""
    key = canonical(name)
    if key not in MICRO:
        raise UnknownValueError(
            f"unknown micro-value {name!r}; expected one of: {', '.join(MICRO_VALUES)}"
        )
    return key


def basic_value_of(micro_value: str) -> str:
    """The basic value a micro-value belongs to."""
    return MICRO[normalize_micro_value(micro_value)].value


def micro_values_of(value: str) -> tuple[str, ...]:
    """The micro-values under a basic value, in taxonomy order."""
    v = normalize_value(value)
    return tuple(m.name for m in MICRO.values() if m.value == v)


def slot(value: str) -> int:
    """Circumplex slot 0..8 (Conformity and Tradition share slot 6)."""
    return BASIC[normalize_value(value)].slot


def angle(value: str, *, radians: bool = False) -> float:
    """Circumplex angle of a basic value: slot x 40 degrees."""
    deg = slot(value) * SLOT_DEGREES
    return math.radians(deg) if radians else deg


def circumplex_distance(u: str, v: str) -> int:
    """Slots between two values the short way round the circle: min(|k_u - k_v|, 9 - |k_u - k_v|)."""
    d = abs(slot(u) - slot(v))
    return min(d, N_SLOTS - d)
