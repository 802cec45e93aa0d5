"""What every entry point does first: resolve and save the config, seed, build data and model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vat.data import ItemSet
from vat.safety import check_targets

log = logging.getLogger(__name__)


def setup(cfg: DictConfig) -> Path:
    """Resolve the config once, save it beside the outputs, point the cache, seed everything.

    Returns the run's output directory.
    """
    check_targets(cfg)  # before anything is instantiated: a config must not run arbitrary code
    OmegaConf.resolve(cfg)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml")
    os.environ["VAT_CACHE"] = str(cfg.paths.cache_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return out


def build_items(cfg: DictConfig) -> ItemSet:
    """The validated, split item set of ``cfg.data``; logs what was loaded and dropped."""
    items: ItemSet = instantiate(cfg.data, _convert_="all")
    log.info("data %s:\n%s", cfg.data.source, items.describe())
    return items
