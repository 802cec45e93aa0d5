"""Measuring VAT: cached pre states and pre-vs-post comparison, shared by `vat.train` (and its
callback) and `vat.evaluate`, which are entry points and import this, never each other."""

from vat.measure.cache import model_key, score_cached
from vat.measure.compare import (
    compute_kwargs,
    cross_for,
    measure,
    measure_probes,
    metrics_for,
    robustness_payload,
)

__all__ = ["compute_kwargs", "cross_for", "measure", "measure_probes", "metrics_for", "model_key", "robustness_payload",
           "score_cached"]  # fmt: skip
