"""What every entry point does first: resolve and save the config, seed, build data and model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vat.data import ItemSet
from vat.preflight import check_config, check_items_for_config
from vat.quiet import quiet_library_noise
from vat.safety import check_targets
from vat.taxonomy import Taxonomy

log = logging.getLogger(__name__)


def setup(cfg: DictConfig) -> Path:
    """Resolve the config once, check it, save it beside the outputs, point the cache, seed.

    Returns the run's output directory. A config that cannot work raises here, before any data or
    model loads and before the run directory exists.
    """
    check_targets(cfg)  # before anything is instantiated: a config must not run arbitrary code
    OmegaConf.resolve(cfg)
    check_config(cfg)  # values, ranges and combinations (vat.preflight.ConfigError)
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml")
    quiet_library_noise(out / "checkpoints")  # library messages that do not concern this run
    os.environ["VAT_CACHE"] = str(cfg.paths.cache_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    return out


def build_taxonomy(cfg: DictConfig) -> Taxonomy:
    """The run's value system (``cfg.taxonomy``); loaded once per process and cached."""
    return instantiate(cfg.taxonomy)


def build_cross(cfg: DictConfig, items: ItemSet) -> dict[str, ItemSet]:
    """Held-out items of every other taxonomy in ``cfg.measure`` (their bundled sets, split as
    ``cfg.data``), each checked to share scenes with the run's own held-out items."""
    from vat.data import load_items
    from vat.taxonomy import load_taxonomy

    own, held = items.taxonomy.name, set(items.heldout().scenes())
    out = {}
    for name in OmegaConf.select(cfg, "measure", default=None) or []:
        if name == own or name in out:
            continue
        tax = load_taxonomy(str(name))
        other = load_items("bundled", tax, test_fraction=cfg.data.test_fraction, seed=cfg.data.seed,
                           use_split_column=cfg.data.use_split_column).heldout()  # fmt: skip
        shared = held & set(other.scenes())
        if not shared:
            raise ValueError(f"measure={list(cfg.measure)}: the held-out scenes of {own} and "
                             f"{name} share none, so their shifts cannot be paired")  # fmt: skip
        log.info("measure %s too: %d held-out items, %d scenes shared with %s", name, len(other),
                 len(shared), own)  # fmt: skip
        out[str(name)] = other
    return out


def build_items(cfg: DictConfig) -> ItemSet:
    """The validated, split item set of ``cfg.data``; logs what was loaded and dropped.

    Also checks what the config asks of the items before any model loads (e.g. enough few-shot
    examples for the largest ``intervention.shots``).
    """
    # The taxonomy goes in after instantiation: Hydra would turn a dataclass argument into a config.
    items: ItemSet = instantiate(cfg.data, _partial_=True, _convert_="all")(
        taxonomy=build_taxonomy(cfg)
    )
    log.info("data %s:\n%s", cfg.data.source, items.describe())
    flagged = items.register().flagged if items.pairs() else []
    if flagged:
        log.warning("data %s: express and suppress actions differ in register (%s); a probe "
                    "margin can move for every value at once: compare with a placebo "
                    "(method=dpo_placebo)", cfg.data.source, ", ".join(flagged))  # fmt: skip
    check_items_for_config(cfg, items)
    return items
