"""Every option of every config group composes; typos and bad values fail at compose time."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from vat.safety import check_targets

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name != "hydra")


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def groups_of(config_name):
    """The config groups a primary config composes (its defaults list)."""
    defaults = OmegaConf.load(CONF / f"{config_name}.yaml").defaults
    return [next(iter(d)) for d in defaults if not isinstance(d, str) and next(iter(d)) != "hydra"]


CASES = [(c, g, o) for c in ("train", "evaluate") for g in groups_of(c) for o in options(g)]


def test_every_group_is_used():
    assert set(GROUPS) == {g for _, g, _ in CASES}


@pytest.mark.parametrize(("config_name", "group", "option"), CASES)
def test_every_option_composes(compose_cfg, config_name, group, option):
    cfg = compose_cfg(config_name, [f"{group}={option}"])
    node = cfg if group in ("experiment", "arm") else cfg[group]  # global overlays
    check_targets(cfg)  # every shipped option names allowlisted callables only
    # Resolve everything except mandatory fields the user fills (e.g. data.source for data=file).
    OmegaConf.to_container(node, resolve=True, throw_on_missing=False)


def test_one_taxonomy_file_per_bundled_definition_and_no_value_files():
    from vat.taxonomy import available

    assert options("taxonomy") == available() == ["mft", "schwartz"]
    assert options("value") == []  # value=<v> options come from the definitions (vat.config)


def test_every_value_of_every_taxonomy_is_an_option(compose_cfg):
    from vat.taxonomy import available, load_taxonomy

    for name in available():
        for v in load_taxonomy(name).value_names:
            cfg = compose_cfg("train", [f"taxonomy={name}", f"value={v}"])
            assert cfg.value.name == v and cfg.taxonomy.name == name


def test_unknown_option_lists_valid_ones(compose_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("train", ["value=kindness"])
    assert "benevolence" in str(e.value) and "universalism" in str(e.value)


def test_typo_in_key_fails_at_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("train", ["data.test_fracton=0.2"])
    assert "Key 'test_fracton' not in 'DataConfig'" in str(e.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        compose_cfg("train", ["model.dtpe=bfloat16"])


def test_wrong_type_fails_at_compose(compose_cfg):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("train", ["data.test_fraction=lots"])
    assert isinstance(e.value.__cause__, ValidationError)
    with pytest.raises(ConfigCompositionException, match="on_invalid"):
        compose_cfg("train", ["data.on_invalid=ignore"])


# ------------------------------------------------------------------- every default written once
def _schema(group: str, name: str):
    from hydra.core.config_store import ConfigStore

    return ConfigStore.instance().load(config_path=f"{group}/{name}.yaml").node


def _own_and_parents(group: str, option: str):
    raw = OmegaConf.load(CONF / group / f"{option}.yaml")
    parents = [d for d in raw.get("defaults", []) if isinstance(d, str) and d != "_self_"]
    own = OmegaConf.masked_copy(raw, [k for k in raw if k != "defaults"])
    return own, parents


def _inherited(group: str, option: str):
    """What an option of a schema-backed group starts from: its schema's defaults, or the option
    it extends (fully composed), before its own lines apply."""
    _, parents = _own_and_parents(group, option)
    base = OmegaConf.create()
    for p in parents:
        if p.startswith("base_"):
            parent = OmegaConf.structured(_schema(group, p))
        else:
            own, _ = _own_and_parents(group, p)
            parent = OmegaConf.merge(_inherited(group, p), own)
        base = OmegaConf.merge(base, parent)
    return base


def _leaves(node, path=""):
    for k in node:
        key = f"{path}.{k}" if path else str(k)
        child = node._get_node(k)
        if OmegaConf.is_dict(child) and len(child):
            yield from _leaves(child, key)
        else:
            yield key, child


def _extends_a_schema(group: str, option: str) -> bool:
    _, parents = _own_and_parents(group, option)
    return any(p.startswith("base_") or _extends_a_schema(group, p) for p in parents)


SCHEMA_OPTIONS = [(g, o) for g in GROUPS for o in options(g) if _extends_a_schema(g, o)]


def test_schema_backed_groups_are_found():
    assert {g for g, _ in SCHEMA_OPTIONS} >= {"model", "data", "probe", "metrics", "intervention"}


@pytest.mark.parametrize(("group", "option"), SCHEMA_OPTIONS)
def test_no_option_repeats_a_default_it_inherits(group, option):
    """A YAML line that sets what the schema (the code's default) or the extended option already
    says is the same default written twice: change one and the other silently disagrees."""
    own, _ = _own_and_parents(group, option)
    base = _inherited(group, option)
    repeated = []
    for key, node in _leaves(own):
        if node._is_interpolation() or node._is_missing():
            continue  # a wiring (${...}) or a required field (???): not a default
        was = OmegaConf.select(base, key, default="<absent>", throw_on_missing=False)
        value = OmegaConf.to_container(node) if OmegaConf.is_config(node) else node._value()
        was = OmegaConf.to_container(was) if OmegaConf.is_config(was) else was
        if was == value:
            repeated.append(f"{key}: {value!r}")
    assert not repeated, f"conf/{group}/{option}.yaml repeats inherited defaults: {repeated}"


def test_schemas_take_the_defaults_of_what_they_configure():
    """`DataConfig` and `MetricsConfig` hold the defaults of `load_items` and `compute_vat` (read
    from their signatures), `Columns` those of `DEFAULT_COLUMNS`: one value each (columns and
    polarity: null in the signature, the same constants in the schema)."""
    import dataclasses

    from vat.config import Columns, DataConfig, MetricsConfig
    from vat.data.loaders import DEFAULT_COLUMNS, load_items
    from vat.defaults import defaults_of
    from vat.metrics import compute_vat

    for schema, fn in ((DataConfig, load_items), (MetricsConfig, compute_vat)):
        given = defaults_of(fn)
        for f in dataclasses.fields(schema):
            if f.name in given and f.default_factory is dataclasses.MISSING:
                assert f.default == given[f.name], (schema.__name__, f.name)
    assert dataclasses.asdict(Columns()) == DEFAULT_COLUMNS
    with pytest.raises(KeyError):
        defaults_of(load_items)["source"]  # required: the schema marks it ??? instead
