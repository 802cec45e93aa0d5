"""Checks that run before any expensive work, failing in seconds with a message naming what is
wrong instead of an hour into a GPU job.

A value outside a choice field's options already failed when Hydra composed the config (the
schemas type them as `vat.settings.Choice` enums). `check_config` runs in `vat.run.setup` (first
thing in ``train.py`` and ``evaluate.py``, before any data or model loads): a number outside its
range (the rule of its node's settings dataclass, or of `RULES` for a key without one), a
combination of nodes that cannot work, or a node whose object refuses it raises `ConfigError`
naming each key, the bad value and what is expected. It runs each rule where it is written and
writes none twice (tests/test_validation_once.py). `check_items_for_config` runs as soon as the
items are loaded, before any model.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from vat.data import ItemSet
from vat.data.schema import DataError
from vat.settings import Rule, SettingsError, number

log = logging.getLogger(__name__)

_UNSET = object()


class ConfigError(ValueError):
    """A config value, or a combination of values, that cannot work."""


def check_items(items: ItemSet, target: str) -> dict:
    """The held-out split covers every value and the target value has training pairs."""
    target = items.taxonomy.normalize_value(target)
    held = items.heldout()  # raises naming the values without a held-out scene
    train_pairs = items.train(target).pairs()
    if not train_pairs:
        source = items.report.source if items.report else "the items"
        raise DataError(source, None, "value",
                        f"value={target}: the train split has no express/suppress pair of a "
                        f"{target} micro-value, so there is nothing to train toward it; add "
                        "scenes with both polarities of one of its micro-values, or lower "
                        "data.test_fraction")  # fmt: skip
    return {
        "target": target,
        "n_items": len(items),
        "n_scenes": len(items.scenes()),
        "n_heldout_items": len(held),
        "n_heldout_scenes": len(held.scenes()),
        "n_train_pairs_target": len(train_pairs),
        "n_dropped_rows": items.report.n_dropped if items.report else 0,
    }


# ----------------------------------------------------------------------------- config checks
# Where each rule lives (each written once): choices are `Choice` enums in the schemas (Hydra
# refuses another value at compose time); the ranges of a node with a settings dataclass are its
# ``RULES`` (`MetricsSettings`, `LoraSpec`), run here by building the dataclass; lambda's is
# `vat.anchor.ANCHOR_WEIGHT`. Here: the keys without a typed node of their own, the rules across
# nodes, and the checks that need an object (taxonomy, probes, intervention, reference).
RULES: dict[str, Rule] = {
    # the VAT callback runs this rule too, when it is built
    "callbacks.vat.every_n_steps": Rule(number(1, integer=True),
                                        "an integer >= 1 (steps between VAT points)"),
    "batch.micro_size": Rule(number(1, integer=True), "an integer >= 1"),
    "batch.global_size": Rule(number(1, integer=True), "an integer >= 1"),
}  # fmt: skip


def _problems(rule: Rule, key: str, value: Any) -> list[str]:
    problem = rule.problem(key, value)
    return [problem] if problem else []


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=_UNSET)


def _show(v: Any) -> str:
    if OmegaConf.is_config(v):
        v = OmegaConf.to_container(v, resolve=True)
    return "null" if v is None else str(v)


def _cause(key: str, e: BaseException) -> str:
    """What went wrong inside a Hydra instantiation (not Hydra's wrapper), under the full key:
    ``probe.k must be ...`` raised by the probe of ``probes.judgment`` reads
    ``probes.judgment.k must be ...``."""
    while e.__cause__ is not None and type(e).__name__ == "InstantiationException":
        e = e.__cause__
    msg = str(e)
    for own in ("probe.", "intervention."):  # how the dataclasses name their own fields
        if msg.startswith(own):
            return f"{key}.{msg[len(own) :]}"
    return f"{key}: {msg}"


def probe_nodes(cfg: DictConfig) -> dict[str, DictConfig]:
    """``{full key: node}`` of every probe a run will use (train: probes.*; evaluate: probe)."""
    if isinstance(_get(cfg, "probes"), DictConfig):
        return {f"probes.{k}": v for k, v in cfg.probes.items() if v is not None}
    probe = _get(cfg, "probe")
    return {"probe": probe} if isinstance(probe, DictConfig) else {}


def intervention_node(cfg: DictConfig) -> tuple[str, DictConfig] | None:
    """The prompting/no-op intervention a run applies: evaluate's, or train's method=prompting."""
    for key in ("intervention", "method.intervention"):
        node = _get(cfg, key)
        if isinstance(node, DictConfig):
            return key, node
    return None


def check_config(cfg: DictConfig) -> None:
    """Raise `ConfigError` listing every value and combination of ``cfg`` that cannot work.

    Runs on the resolved config before any data or model loads. Each line names the key, the bad
    value and what is expected.
    """
    from hydra.utils import instantiate

    problems: list[str] = []

    problems += _taxonomy_problems(cfg)

    problems += _settings_problems(cfg)
    for key, rule in RULES.items():
        v = _get(cfg, key)
        if v is not _UNSET:
            problems += _problems(rule, key, v)

    model = _get(cfg, "model")
    if isinstance(model, DictConfig):
        if not model.get("build") and not model.get("pretrained"):
            problems.append(
                "model.pretrained=null and model.build=null: set model.pretrained to a Hub id or "
                "a local directory (or choose a model=<option>)"
            )
        if model.get("trust_remote_code"):
            log.warning(
                "model.trust_remote_code=true: loading %s will run Python code shipped with the "
                "model; set it only for a model whose code you have read and trust",
                model.get("pretrained") or model.get("build") or model.get("name"),
            )

    # Combinations
    trains = _get(cfg, "method.module") not in (None, _UNSET)
    problems += _check_train_data(cfg)
    problems += _check_anchor(cfg)
    problems += _check_reference(cfg)
    probes = probe_nodes(cfg)
    if trains and not probes:
        problems.append(
            "probes is empty: training measures its VAT curve with at least one probe; add one, "
            "e.g. +probe@probes.likelihood=likelihood"
        )
    for key, node in probes.items():
        problems += _check_probe(key, node)

    found = intervention_node(cfg)
    if found is not None:
        key, node = found
        try:
            intervention = instantiate(node, _convert_="all")
        except Exception as e:
            problems.append(_cause(key, e))
        else:
            no_post = _get(cfg, "post_model") in (None, _UNSET)
            if key == "intervention" and no_post and not intervention.strengths():
                problems.append(
                    f"intervention={intervention.name} with post_model=null: nothing to compare "
                    "with the base model; set post_model=<checkpoint or LoRA adapter dir> or "
                    "intervention=prompting"
                )
    post_model = _get(cfg, "post_model")
    if post_model not in (None, _UNSET) and not Path(str(post_model)).expanduser().is_dir():
        problems.append(
            f"post_model={post_model}: no such directory; expected a checkpoint directory (HF "
            "model or LoRA adapter)"
        )

    problems += secrets_in_config(cfg)

    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))


def _check_train_data(cfg) -> list[str]:
    """``method.train_data`` names a kind the method's module can train on (`vat.data.placebo`)."""

    kind = _get(cfg, "method.train_data")
    target = _get(cfg, "method.module._target_")
    if kind in (None, _UNSET) or target in (None, _UNSET):
        return []
    datamodule = _get(cfg, "method.datamodule._target_")
    if datamodule in (None, _UNSET):
        return []
    try:
        from hydra.utils import get_class

        allowed = get_class(datamodule).kinds  # the data module's own list (vat.data.datamodule)
    except Exception:  # an unknown class is reported by the _target_ checks
        return []
    if kind not in allowed:
        return [f"method.train_data={kind}: {target} trains on one of {list(allowed)}"]
    return []


def _check_reference(cfg: DictConfig) -> list[str]:
    """``method.module.reference`` names a `vat.reference.Reference` that can run on this model:
    the classes' own rules (`Reference.check`), the same ones the module applies when it builds."""
    reference = _get(cfg, "method.module.reference")
    if reference in (None, _UNSET):
        return []
    from hydra.utils import get_class

    from vat import reference as R

    try:
        if isinstance(reference, DictConfig) and "_target_" in reference:
            cls = get_class(reference._target_)
            if not (isinstance(cls, type) and issubclass(cls, R.Reference)):
                raise ValueError(f"method.module.reference._target_={reference._target_}: not a "
                                 "vat.reference.Reference class")  # fmt: skip
            ref = cls()
        else:
            ref = R.resolve(reference)
    except (ValueError, ImportError) as e:
        return [str(e)]
    problem = ref.check(lora=_get(cfg, "model.lora") not in (None, _UNSET))
    return [problem] if problem else []


def _check_anchor(cfg) -> list[str]:
    """Tax-aware DPO (`vat.anchor`): anchor pairs and an anchor penalty come together; k and
    lambda by the rules `vat.anchor` writes for them."""
    from vat.anchor import ANCHOR_PER_PAIR, ANCHOR_WEIGHT

    k = _get(cfg, "method.anchor_per_pair")
    fn = _get(cfg, "method.module.anchor")
    weight = _get(cfg, "method.module.anchor_weight")
    has_k = k not in (None, _UNSET, 0)
    has_fn = fn not in (None, _UNSET)
    out = _problems(ANCHOR_PER_PAIR, "method.anchor_per_pair", k) if has_k else []
    has_k = has_k and not out  # a bad k: the combinations below would only repeat it
    if has_k and _get(cfg, "method.module") in (None, _UNSET):
        out.append(f"method.anchor_per_pair={k}: only a training method (DPO) takes anchor pairs")
    elif has_k and not has_fn:
        out.append(f"method.anchor_per_pair={k} with method.module.anchor=null: the anchor pairs "
                   "would be scored and ignored; set method.module.anchor (method=dpo_anchored) or "
                   "method.anchor_per_pair=0")  # fmt: skip
    if has_fn and not has_k and not out:
        out.append("method.module.anchor is set but method.anchor_per_pair is 0: no anchor pairs "
                   "to hold; set method.anchor_per_pair=1 (or more)")  # fmt: skip
    if weight not in (None, _UNSET):
        out += _problems(ANCHOR_WEIGHT, "method.module.anchor_weight", weight)
    return out


def _settings_problems(cfg: DictConfig) -> list[str]:
    """The nodes whose dataclass checks its own fields (`vat.settings.Settings`), built from the
    config: ``metrics`` (`MetricsConfig`), ``model`` (`ModelSpec`: its choices, for a config
    composed without the schema) and ``model.lora`` (`LoraSpec`). Each problem under its key."""
    from vat.config import MetricsConfig
    from vat.models.loading import LoraSpec, ModelSpec

    out = []
    for key, cls in (("model", ModelSpec), ("model.lora", LoraSpec), ("metrics", MetricsConfig)):
        node = _get(cfg, key)
        if not isinstance(node, DictConfig):
            continue
        kwargs = OmegaConf.to_container(node, resolve=True)
        if cls is ModelSpec:  # its lora node is checked on its own; only ModelSpec's fields
            kwargs = {k: v for k, v in kwargs.items() if k in ModelSpec.__dataclass_fields__}
            kwargs.pop("lora", None)
        try:
            cls(**kwargs)
        except SettingsError as e:
            out += [f"{key}.{p}" for p in e.problems]
        except TypeError as e:  # an unknown key, in a config composed without the schema
            out.append(f"{key}: {e}")
    return out


# Environment variables whose values are credentials (W&B, Hugging Face, cloud keys, ...).
SECRET_ENV = re.compile(r"(^|_)(TOKEN|API_KEY|SECRET|SECRET_KEY|PASSWORD|ACCESS_KEY)$", re.I)


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, node


def secrets_in_config(cfg: DictConfig) -> list[str]:
    """Keys whose resolved value holds a credential from the environment (e.g.
    ``${oc.env:HF_TOKEN}``): the config is saved to config.yaml and logged to every logger, so a
    secret must stay in the environment, where the libraries read it. Names the variable, never
    the value."""
    secrets = {k: v for k, v in os.environ.items() if SECRET_ENV.search(k) and len(v) >= 8}
    if not secrets:
        return []
    found = []
    for key, value in _leaves(OmegaConf.to_container(cfg, resolve=True)):
        for name, secret in secrets.items():
            if isinstance(value, str) and secret in value:
                found.append(
                    f"{key} holds the value of ${name}: the config is written to config.yaml and "
                    "to the loggers; leave secrets in the environment (W&B and Hugging Face read "
                    "them from there)"
                )
    return found


def _check_probe(key: str, node: DictConfig) -> list[str]:
    """A probe node: the probe's own checks pass (the judgment scale's `check_scale` among them),
    so a bad value fails here with the message the probe would raise."""
    from hydra.utils import instantiate

    try:
        instantiate(node, _convert_="all")  # a dataclass: its __post_init__ checks its fields
    except Exception as e:
        return [_cause(key, e)]
    return []


def _taxonomy_problems(cfg: DictConfig) -> list[str]:
    """The taxonomy loads and ``value.name`` is one of its values."""
    from hydra.utils import instantiate

    node, name = _get(cfg, "taxonomy"), _get(cfg, "value.name")
    if node is _UNSET:
        return []
    try:
        taxonomy = instantiate(node)
    except Exception as e:
        return [_cause("taxonomy", e)]
    if name is _UNSET:
        return []
    try:
        taxonomy.normalize_value(str(name))
    except ValueError:
        return [f"value.name={name}: not a value of taxonomy={taxonomy.name}; expected one of "
                f"{', '.join(taxonomy.value_names)}"]  # fmt: skip
    return []


def check_items_for_config(cfg: DictConfig, items: ItemSet) -> None:
    """What needs the items but no model: the few-shot examples the intervention asks for exist."""
    from hydra.utils import instantiate

    found = intervention_node(cfg)
    name = _get(cfg, "value.name")
    if found is None or name is _UNSET:
        return
    key, node = found
    intervention = instantiate(node, _convert_="all")
    strengths = intervention.strengths()
    if not strengths:
        return
    try:
        intervention.context(items, items.taxonomy.normalize_value(str(name)), max(strengths))
    except ValueError as e:
        raise ConfigError(f"{key}.shots={_show(node.get('shots'))}: {e}") from e
