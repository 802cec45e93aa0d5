"""Register balance: do a dataset's express and suppress actions differ in *how* they are written?

A probe margin of express over suppress should move because a model's values moved, not because it
learned that one polarity is longer, more often negated or more upbeat. If suppress actions are
mostly refusals ("I decline ...", "I do not ...") and express actions mostly doings, any
intervention that shifts the model's taste for negated sentences moves *every* value's score at
once, which the metrics then read as a uniform tax. This module measures, per polarity, three
register features and tests each over the express/suppress pairs:

- **negation**: the share of actions with a negation or avoidance word (`NEGATION`: not, never,
  refuse, decline, instead, avoid, ignore, skip, without, rather than, ...);
- **length**: words per action;
- **sentiment**: the share with a positive affect marker and the share with a negative one
  (`POSITIVE`, `NEGATIVE`: short lexicons of affect adverbs and verbs, not a sentiment model).

Tests are paired over the (scene, micro-value) pairs: McNemar's exact test for the binary features
(statsmodels), the Wilcoxon signed-rank test for length (scipy). A feature is *flagged* when its
test rejects at ``alpha`` **and** the difference is material (``min_share_gap`` for shares,
``min_words_gap`` for length): with thousands of pairs a trivial difference is significant, and
with a few dozen a large one may not be, so both are required and both are reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

NEGATION = (
    r"not", r"\w+n't", r"never", r"no", r"none", r"nothing", r"nobody", r"neither", r"nor",
    r"refus(?:e|es|ed|ing)", r"declin(?:e|es|ed|ing)", r"instead", r"avoid(?:s|ed|ing)?",
    r"ignor(?:e|es|ed|ing)", r"skip(?:s|ped|ping)?", r"without", r"rather than",
    r"withh(?:old|olds|eld|olding)", r"abstain(?:s|ed|ing)?", r"(?:stay|stays|keep|keeps) out",
)  # fmt: skip
POSITIVE = (
    r"gladly", r"happily", r"warmly", r"proudly", r"eagerly", r"enthusiastically", r"cheerfully",
    r"joyfully", r"generously", r"kindly", r"delighted", r"grateful(?:ly)?", r"lov(?:e|es|ed|ing)",
    r"enjoy(?:s|ed|ing)?", r"celebrat(?:e|es|ed|ing)", r"thank(?:s|ed|ing)?",
)  # fmt: skip
NEGATIVE = (
    r"reluctantly", r"grudgingly", r"coldly", r"angrily", r"bitterly", r"rudely", r"harshly",
    r"resent(?:s|ed|ing)?", r"complain(?:s|ed|ing)?", r"blam(?:e|es|ed|ing)", r"mock(?:s|ed|ing)?",
    r"scold(?:s|ed|ing)?", r"sulk(?:s|ed|ing)?", r"annoyed", r"grumbl(?:e|es|ed|ing)",
)  # fmt: skip


def _lexicon(words: Iterable[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


_NEG, _POS, _NEGATIVE = _lexicon(NEGATION), _lexicon(POSITIVE), _lexicon(NEGATIVE)


def has_negation(text: str) -> bool:
    return _NEG.search(text.replace("’", "'")) is not None


def features(text: str) -> dict[str, float]:
    """The register features of one action: negation, words, positive and negative markers."""
    return {
        "negation": float(has_negation(text)),
        "words": float(len(text.split())),
        "positive": float(_POS.search(text) is not None),
        "negative": float(_NEGATIVE.search(text) is not None),
    }


#: Feature -> kind: "share" features are binary per action, "mean" ones are counts.
FEATURES = {"negation": "share", "words": "mean", "positive": "share", "negative": "share"}


@dataclass(frozen=True)
class FeatureCheck:
    feature: str
    express: float  # share (or mean words) over the express actions of the pairs
    suppress: float
    p: float  # paired test of "no difference"; NaN with fewer than `min_pairs` pairs
    flagged: bool

    @property
    def gap(self) -> float:
        return self.express - self.suppress

    def line(self) -> str:
        unit = "" if FEATURES[self.feature] == "mean" else " share"
        mark = "  <- differs" if self.flagged else ""
        return (f"{self.feature}{unit}: express {self.express:.3f}, suppress {self.suppress:.3f} "
                f"(gap {self.gap:+.3f}, paired p = {self.p:.2g}){mark}")  # fmt: skip


@dataclass(frozen=True)
class RegisterReport:
    """Per-polarity register of a dataset's pairs and whether the polarities differ."""

    n_pairs: int
    checks: tuple[FeatureCheck, ...] = field(default_factory=tuple)
    counts: dict[str, int] = field(default_factory=dict)  # actions with negation, per polarity

    @property
    def flagged(self) -> list[str]:
        return [c.feature for c in self.checks if c.flagged]

    def check(self, feature: str) -> FeatureCheck:
        return next(c for c in self.checks if c.feature == feature)

    def summary(self) -> str:
        head = (f"register of {self.n_pairs} express/suppress pairs (negation/avoidance words in "
                f"{self.counts.get('express', 0)} express vs {self.counts.get('suppress', 0)} "
                "suppress actions):")  # fmt: skip
        lines = [head] + ["  " + c.line() for c in self.checks]
        if self.flagged:
            lines.append(
                f"  WARNING: express and suppress actions differ in register ({', '.join(self.flagged)}):"
                " a probe margin can then move for every value at once; read the tax net of a "
                "placebo (README, 'Is my tax real?')"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "n_pairs": self.n_pairs,
            "counts_negation": dict(self.counts),
            "flagged": self.flagged,
            "checks": {c.feature: {"express": c.express, "suppress": c.suppress, "gap": c.gap,
                                   "p": c.p, "flagged": c.flagged} for c in self.checks},
        }  # fmt: skip


def register_report(
    pairs: Iterable[tuple[str, str]],
    *,
    alpha: float = 0.01,
    min_share_gap: float = 0.05,
    min_words_gap: float = 0.5,
    min_pairs: int = 10,
) -> RegisterReport:
    """Compare the register of the express and the suppress action over (express, suppress) pairs."""
    pairs = list(pairs)
    n = len(pairs)
    fx = [features(e) for e, _ in pairs]
    fs = [features(s) for _, s in pairs]
    checks = []
    for name, kind in FEATURES.items():
        a = np.array([f[name] for f in fx])
        b = np.array([f[name] for f in fs])
        ea, eb = (float(a.mean()), float(b.mean())) if n else (float("nan"),) * 2
        p = float("nan")
        if n >= min_pairs:
            if kind == "share":
                table = [[np.sum((a == 1) & (b == 1)), np.sum((a == 1) & (b == 0))],
                         [np.sum((a == 0) & (b == 1)), np.sum((a == 0) & (b == 0))]]  # fmt: skip
                p = float(mcnemar(table, exact=True).pvalue)
            elif np.any(a != b):
                p = float(stats.wilcoxon(a, b).pvalue)
            else:
                p = 1.0
        threshold = min_share_gap if kind == "share" else min_words_gap
        flagged = bool(np.isfinite(p) and p < alpha and abs(ea - eb) >= threshold)
        checks.append(FeatureCheck(name, ea, eb, p, flagged))
    counts = {"express": int(sum(f["negation"] for f in fx)),
              "suppress": int(sum(f["negation"] for f in fs))}  # fmt: skip
    return RegisterReport(n, tuple(checks), counts)
