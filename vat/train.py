"""`train(cfg)`: what ``python train.py`` runs."""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from vat.preflight import preflight
from vat.run import build_items, setup

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    """Validate data, target value and model (preflight). The SFT/DPO training loop builds on this."""
    out = setup(cfg)
    items = build_items(cfg)
    return preflight(cfg, items, out)
