"""`evaluate(cfg)`: what ``python evaluate.py`` runs."""

from __future__ import annotations

from omegaconf import DictConfig

from vat.preflight import preflight
from vat.run import build_items, setup


def evaluate(cfg: DictConfig) -> dict:
    out = setup(cfg)
    items = build_items(cfg)
    return preflight(cfg, items, out)
