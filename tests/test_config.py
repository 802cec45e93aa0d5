"""Every option of every config group composes; typos and bad values fail at compose time."""

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from vat import values as V
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


def test_one_value_file_per_basic_value():
    assert options("value") == sorted(V.BASIC_VALUES)


def test_value_file_name_matches_its_name(compose_cfg):
    for v in V.BASIC_VALUES:
        assert compose_cfg("train", [f"value={v}"]).value.name == v


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
