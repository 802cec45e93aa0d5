"""Typed schemas for `vat`'s own config nodes, registered in Hydra's ConfigStore.

Each group's YAML files extend its schema (``defaults: [base_<group>, _self_]``), so a misspelt key
or a wrongly typed value fails when Hydra composes the config, before any model or data loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from vat.data.loaders import DEFAULT_POLARITY, DEFAULT_SCENARIO_TEMPLATE
from vat.data.schema import OnInvalid
from vat.interventions import NoIntervention, Prompting
from vat.models.loading import ModelSpec
from vat.probes import JudgmentProbe, LikelihoodProbe
from vat.sweep.names import register_resolvers


@dataclass
class Columns:
    """Source column for each item field; null derives it (id from the line, value from the
    micro-value, scene_id from country + domain + scenario, scenario from the template)."""

    id: str | None = "id"
    scene_id: str | None = "scene_id"
    country: str | None = "country"
    domain: str | None = "domain"
    scenario: str | None = "scenario"
    value: str | None = "value"
    micro_value: str | None = "micro_value"
    polarity: str | None = "polarity"
    action: str | None = "action"
    split: str | None = "split"


@dataclass
class DataConfig:
    """Arguments of `vat.data.load_items`: where the items are, how columns map, how to split."""

    _target_: str = "vat.data.load_items"
    source: str = MISSING  # "bundled", a file path, or a Hugging Face dataset id (format=hf)
    format: str = "auto"  # auto (from the suffix) | jsonl | json | csv | parquet | hf
    hf_split: str = "train"
    revision: str | None = None
    data_files: Any = None
    columns: Columns = field(default_factory=Columns)
    polarity: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_POLARITY))
    scenario_template: str = DEFAULT_SCENARIO_TEMPLATE
    on_invalid: OnInvalid = OnInvalid.error
    test_fraction: float = 0.3
    seed: int = 0
    use_split_column: bool = True


@dataclass
class ValueConfig:
    """The target value of the intervention (one file per basic value in conf/value/)."""

    name: str = MISSING


@dataclass
class MetricsConfig:
    """Arguments of `vat.metrics.compute_vat` (see vat-spec section 4)."""

    eps: float = 0.01  # |gain| below eps (in eps_units): tax ratios are NaN and flagged
    eps_units: str = "pre_sd"  # pre_sd (eps x the pre state's scene SD) | score (probe units)
    coupling_method: str = "spearman"  # spearman | kendall
    min_overlap: int = 8  # fewest shared scenes for a correlation to enter R (else NaN)
    n_bootstrap: int = 1000
    bootstrap_scheme: str = "bootstrap"  # bootstrap | subsample (the paper's 80% subsamples)
    subsample_frac: float = 0.8
    ci: float = 0.95
    n_permutations: int = 1000  # permutations of the coupling nulls and the Mantel test
    hub_k: int = 3
    seed: int = 0
    # value: the ten basic values; both: also the 56 micro-values and Kendall's tau at the final
    # point, with their agreement (vat.metrics.robustness; not an argument of compute_vat)
    level: str = "value"


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
    cs.store(group="paths", name="base_paths", node=PathsConfig)
    cs.store(group="metrics", name="base_metrics", node=MetricsConfig)
    cs.store(group="probe", name="base_likelihood", node=LikelihoodProbe)
    cs.store(group="probe", name="base_judgment", node=JudgmentProbe)
    cs.store(group="intervention", name="base_none", node=NoIntervention)
    cs.store(group="intervention", name="base_prompting", node=Prompting)


register_configs()
register_resolvers()
