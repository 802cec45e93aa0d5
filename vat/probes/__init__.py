"""Probes turn a model into a value state: judgment (Likert) and likelihood (pair margin)."""

from vat.probes.base import ProbeResult, PromptContext, state_matrix, validity
from vat.probes.judgment import JudgmentProbe
from vat.probes.likelihood import LikelihoodProbe
from vat.probes.scoring import Request, Scorer, Scores

__all__ = [
    "JudgmentProbe",
    "LikelihoodProbe",
    "ProbeResult",
    "PromptContext",
    "Request",
    "Scorer",
    "Scores",
    "state_matrix",
    "validity",
]
