"""Typed schemas for `vat`'s own config nodes, registered in Hydra's ConfigStore.

Each group's YAML files extend its schema (``defaults: [base_<group>, _self_]``), so a misspelt key
or a wrongly typed value fails when Hydra composes the config, before any model or data loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from vat.data.loaders import DEFAULT_COLUMNS, DEFAULT_POLARITY, load_items
from vat.data.readers import _READERS
from vat.data.schema import OnInvalid
from vat.defaults import defaults_of
from vat.interventions import NoIntervention, Prompting
from vat.metrics.settings import MetricsSettings
from vat.models.loading import ModelSpec
from vat.probes import JudgmentProbe, LikelihoodProbe
from vat.settings import Choice
from vat.sweep.names import register_resolvers
from vat.taxonomy import available, load_taxonomy

_LOAD_ITEMS = defaults_of(load_items)

#: data.format: from the file's suffix (auto), a reader of `vat.data.readers`, or the Hugging Face hub
DataFormat = Choice("DataFormat", {f: f for f in ("auto", *_READERS, "hf")})
_FORMAT = DataFormat(_LOAD_ITEMS["format"])


# Source column for each item field; null derives it (id from the line, value from the
# micro-value, scene_id from country + domain + scenario, scenario from the template). The
# defaults are `vat.data.loaders.DEFAULT_COLUMNS`.
Columns = make_dataclass("Columns", [(k, str | None, v) for k, v in DEFAULT_COLUMNS.items()])


@dataclass
class DataConfig:
    """Arguments of `vat.data.load_items`: where the items are, how columns map, how to split.
    Defaults are `load_items`'s own."""

    _target_: str = "vat.data.load_items"
    source: str = MISSING  # "bundled", a file path, or a Hugging Face dataset id (format=hf)
    format: DataFormat = _FORMAT  # auto (from the suffix) | jsonl | json | csv | parquet | hf
    hf_split: str = _LOAD_ITEMS["hf_split"]
    revision: str | None = _LOAD_ITEMS["revision"]
    data_files: Any = _LOAD_ITEMS["data_files"]
    columns: Columns = field(default_factory=Columns)
    polarity: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_POLARITY))
    scenario_template: str = _LOAD_ITEMS["scenario_template"]
    on_invalid: OnInvalid = _LOAD_ITEMS["on_invalid"]
    test_fraction: float = _LOAD_ITEMS["test_fraction"]
    seed: int = _LOAD_ITEMS["seed"]
    use_split_column: bool = _LOAD_ITEMS["use_split_column"]


@dataclass
class TaxonomyConfig:
    """The value system (`vat.taxonomy.load_taxonomy`): a bundled definition by ``name``
    (vat/taxonomy/definitions/<name>.yaml) or your own YAML definition at ``path``."""

    _target_: str = "vat.taxonomy.load_taxonomy"
    name: str = MISSING
    path: str | None = None


@dataclass
class ValueConfig:
    """The target value of the intervention: ``value=<name>`` for any value of a bundled taxonomy
    (registered below), ``value.name=<name>`` for a taxonomy of your own; checked against the
    chosen taxonomy before anything loads (`vat.preflight`)."""

    name: str = MISSING


class Level(Choice):
    """value: the taxonomy's values; both: also its micro-values and Kendall's tau at the final
    point, with their agreement (`vat.metrics.robustness`)."""

    value = "value"
    both = "both"


@dataclass
class MetricsConfig(MetricsSettings):
    """The ``metrics`` node: `vat.metrics.compute_vat`'s settings (`MetricsSettings`: their
    defaults, options and ranges) and the ``level`` of the analysis (not an argument of
    compute_vat). A choice outside its options fails at compose time; a number outside its range
    when `vat.preflight` builds this dataclass, before anything loads."""

    level: Level = Level.value
    seed: int = MetricsSettings.seed  # a run's metrics are reproducible: no null (fresh entropy)


@dataclass
class PathsConfig:
    root_dir: str = MISSING
    output_dir: str = MISSING
    cache_dir: str = MISSING  # models built offline, pre states and reference log-probs


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="model", name="base_model", node=ModelSpec)
    cs.store(group="data", name="base_data", node=DataConfig)
    cs.store(group="value", name="base_value", node=ValueConfig)
    cs.store(group="taxonomy", name="base_taxonomy", node=TaxonomyConfig)
    # value=default (the configs' default): the chosen taxonomy's default target
    cs.store(group="value", name="default",
             node=ValueConfig(name="${taxonomy_default_value:${taxonomy.name},${taxonomy.path}}"))  # fmt: skip
    for tax in map(load_taxonomy, available()):  # value=<v> for every value of every taxonomy
        for v in tax.value_names:
            cs.store(group="value", name=v, node=ValueConfig(name=v))
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    cs.store(group="metrics", name="base_metrics", node=MetricsConfig)
    cs.store(group="probe", name="base_likelihood", node=LikelihoodProbe)
    cs.store(group="probe", name="base_judgment", node=JudgmentProbe)
    cs.store(group="intervention", name="base_none", node=NoIntervention)
    cs.store(group="intervention", name="base_prompting", node=Prompting)


def _taxonomy_default_value(name: str, path: str | None = None) -> str:
    return load_taxonomy(name, path).default_target


register_configs()
register_resolvers()
if not OmegaConf.has_resolver("taxonomy_default_value"):
    OmegaConf.register_new_resolver("taxonomy_default_value", _taxonomy_default_value)
