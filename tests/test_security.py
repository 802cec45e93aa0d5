"""A config may only instantiate callables from the allowlist (`vat.safety`)."""

import pytest

from vat.run import setup
from vat.safety import UnsafeTargetError, check_targets, iter_targets


def test_shipped_defaults_pass_and_every_target_is_found(compose_cfg):
    cfg = compose_cfg("train", ["strategy=deepspeed_zero3"])
    check_targets(cfg)
    found = dict(iter_targets(cfg))
    assert found["method.module.optimizer._target_"] == "torch.optim.AdamW"
    assert found["strategy._target_"] == "vat.strategies.DeepSpeedStrategy"


@pytest.mark.parametrize(
    "override",
    ["method.module.optimizer._target_=os.system", "+callbacks.evil._target_=subprocess.call",
     "method.module.loss._target_=builtins.eval", "method.module.optimizer._target_=torchx.evil"],
)  # fmt: skip
def test_a_target_outside_the_allowlist_is_refused_before_anything_runs(compose_cfg, override):
    cfg = compose_cfg("train", ["model=tiny", override])
    key, _, value = override.lstrip("+").partition("=")
    with pytest.raises(UnsafeTargetError, match=r"security\.allow_targets") as e:
        setup(cfg)
    assert f"{key}='{value}'" in str(e.value)
    assert not (cfg.paths.output_dir and __import__("os").path.exists(cfg.paths.output_dir))


def test_the_user_can_allow_a_module_on_purpose(compose_cfg):
    allow = "security.allow_targets=[mypkg.]"
    check_targets(
        compose_cfg("train", ["method.module.optimizer._target_=mypkg.optim.Lion", allow])
    )
    # a module prefix, not a substring: mypkgevil is not mypkg
    cfg = compose_cfg("train", ["method.module.optimizer._target_=mypkgevil.x", allow])
    with pytest.raises(UnsafeTargetError):
        check_targets(cfg)


@pytest.mark.parametrize("config_name", ["train", "evaluate"])
def test_a_model_builder_is_a_callable_path_the_allowlist_checks(compose_cfg, config_name):
    """``model.build`` names a function `resolve_path` calls: the allowlist covers it too."""
    shipped = dict(iter_targets(compose_cfg(config_name)))
    assert shipped["model.build"] == "vat.models.smollm2.smollm2_model_dir"
    hub = dict(iter_targets(compose_cfg(config_name, ["model=qwen2_5_0_5b_instruct"])))
    assert "model.build" not in hub  # a Hub model has no builder: nothing to check
    cfg = compose_cfg(config_name, ["model.build=os.system"])
    with pytest.raises(UnsafeTargetError, match=r"security\.allow_targets") as e:
        setup(cfg)
    assert "model.build='os.system'" in str(e.value)
    assert not __import__("os").path.exists(cfg.paths.output_dir)
    check_targets(
        compose_cfg(config_name, ["model.build=mypkg.build", "security.allow_targets=[mypkg.]"])
    )
