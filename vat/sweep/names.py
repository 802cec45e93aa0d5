"""What a sweep's cells are, and what they and the sweep's W&B group are called.

A cell's dir (``hydra.sweep.subdir``) is named by its overrides (``method=dpo,value=security``,
hashed when too long); the cells are the basic sweeper's cartesian product of the sweep's
overrides. `register_resolvers` gives these names to the configs as OmegaConf resolvers.
"""

from __future__ import annotations

import hashlib

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

MAX_NAME = 160  # a cell dir's name stays well under the 255-byte file name limit


def cell_name(override_dirname: str | None) -> str:
    """A cell's dir name: its overrides (``method=dpo,value=security``), hashed when too long.

    One path component: a ``/`` in an override (``data.source=/data/items.jsonl``) becomes ``%``,
    else the cell's dir would nest (and, shortened, differ from the name the manifest keeps)."""
    name = (override_dirname or "default").replace("/", "%")
    if len(name.encode()) <= MAX_NAME:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name.encode()[: MAX_NAME - 11].decode(errors='ignore')}-{digest}"


def planned_cells(config: DictConfig) -> list[dict]:
    """Every cell the basic sweeper will run, as ``{"name", "overrides"}``, from the multirun config.

    Mirrors `BasicSweeper.sweep`: ``hydra.sweeper.params`` first, then the command line overrides,
    expanded into their cartesian product; names follow ``hydra.job.override_dirname``.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    hydra_cfg = config.hydra
    params = hydra_cfg.sweeper.get("params") or {}
    args = [f"{k}={v}" for k, v in params.items()]
    args += list(OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))
    parser = OverridesParser.create()
    batches = BasicSweeper.split_arguments(parser.parse_overrides(args), None)
    return [{"name": cell_dir_name(list(o), hydra_cfg), "overrides": list(o)}
            for o in (batches[0] if batches else [])]  # fmt: skip


def cell_dir_name(overrides: list[str], hydra_cfg: DictConfig) -> str:
    """The dir name (``hydra.sweep.subdir``) of the cell with these job overrides."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    od = hydra_cfg.job.config.override_dirname
    name = get_overrides_dirname(
        overrides=OverridesParser.create().parse_overrides(overrides),
        exclude_keys=list(od.exclude_keys), item_sep=od.item_sep, kv_sep=od.kv_sep,
    )  # fmt: skip
    return cell_name(name)


def sweep_group(name: str | None) -> str | None:
    """The W&B group of a run: the sweep's name in a multirun, none for a single run."""
    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return None
    return f"{hc.job.name}-{name}" if name else hc.job.name


def register_resolvers() -> None:
    """Register the resolvers the configs use. `vat.config` calls this beside registering the
    config schemas, so wherever a config can be composed its run dir and W&B group resolve too (a
    submitit job receives both, the config store and the resolvers, in Hydra's singleton state)."""
    # ${vat_sweep_group:<sweep name>}: the W&B group of a sweep's cells (none for a single run)
    OmegaConf.register_new_resolver("vat_sweep_group", sweep_group, replace=True)
    # ${vat_cell_name:${hydra.job.override_dirname}}: a sweep cell's dir name (hashed if long)
    OmegaConf.register_new_resolver("vat_cell_name", cell_name, replace=True)
