"""`vat.preflight`: the checks that run before any data or model loads. Each bad value names its key,
the value and what is expected; each rule on its own (ranges, nodes, references, secrets, the
items); and nothing the repository ships is refused. Bad configs through the entry points (nothing
loads, no run dir): tests/reliability/test_config_faults.py."""

import pytest
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from tests import schwartz as V
from tests.test_config import CASES
from vat import preflight as P
from vat.preflight import (
    ConfigError,
    check_config,
    check_items,
    intervention_node,
    probe_nodes,
    secrets_in_config,
)


@pytest.mark.slow
def test_every_shipped_option_passes_the_setup_checks(compose_cfg, tmp_path):
    """The checks reject nothing the repository ships (intervention=none needs a post model)."""
    from omegaconf import OmegaConf

    for config_name, group, option in CASES:
        extra = [f"post_model={tmp_path}"] if (group, option) == ("intervention", "none") else []
        cfg = compose_cfg(config_name, [f"{group}={option}", *extra])
        if group == "data" and option == "file":
            continue  # data.source is the user's to fill in (??? until then)
        OmegaConf.resolve(cfg)
        check_config(cfg)


def test_trust_remote_code_in_the_config_is_warned_about_at_setup(compose_cfg, caplog):
    from omegaconf import OmegaConf

    cfg = compose_cfg("evaluate", ["model=tiny", "model.trust_remote_code=true"])
    OmegaConf.resolve(cfg)
    with caplog.at_level("WARNING", logger="vat.preflight"):
        check_config(cfg)
    assert "model.trust_remote_code=true" in caplog.text and "trust" in caplog.text


def test_check_items_on_the_bundled_set(items):
    """48 scenes of 20 items; 30% held out: 14 scenes (280 items); the 34 training scenes hold one
    benevolence pair each."""
    assert check_items(items, "Benevolence") == {
        "target": "benevolence", "n_items": 960, "n_scenes": 48, "n_heldout_items": 280,
        "n_heldout_scenes": 14, "n_train_pairs_target": 34, "n_dropped_rows": 0,
    }  # fmt: skip


def test_bad_values_are_listed_in_order_with_what_is_expected():
    cfg = OmegaConf.create({
        "value": {"name": "greed"}, "model": {"pretrained": "org/model", "dtype": "int8"},
        "taxonomy": {"_target_": "vat.taxonomy.load_taxonomy", "name": "schwartz"},
        "metrics": {"ci": 1.0, "n_bootstrap": 2.5, "subsample_frac": 1.0, "eps": 0},
    })  # fmt: skip
    with pytest.raises(ConfigError) as e:
        check_config(cfg)
    assert str(e.value).splitlines() == [
        "invalid config:",
        f"  value.name=greed: not a value of taxonomy=schwartz; expected one of "
        f"{', '.join(V.BASIC_VALUES)}",
        "  model.dtype=int8: expected one of float32, bfloat16, float16",
        "  metrics.n_bootstrap=2.5: expected an integer >= 0",
        "  metrics.ci=1.0: expected a level in (0, 1), e.g. 0.95",
    ]
    check_config(OmegaConf.create({"model": {"pretrained": "org/model"}, "metrics": {"ci": 0.9}}))


def test_the_range_checks_at_their_bounds():
    from vat.settings import number

    fraction = number(0, 1, lo_open=True)  # (0, 1]
    assert [fraction(x) for x in (0, 1e-9, 0.5, 1, 1.000001)] == [False, True, True, True, False]
    assert not any(fraction(x) for x in (True, "0.5", None))  # a bool is no number here
    count = number(0, None, integer=True)  # an integer >= 0
    assert [count(x) for x in (-1, 0, 7, 2.0, False)] == [False, True, True, False, False]


def test_probe_and_intervention_nodes_of_train_and_evaluate_configs():
    train = OmegaConf.create({"probes": {"likelihood": {"_target_": "a"}, "judgment": None},
                              "method": {"intervention": {"_target_": "b"}}})  # fmt: skip
    assert probe_nodes(train) == {"probes.likelihood": train.probes.likelihood}
    assert intervention_node(train) == ("method.intervention", train.method.intervention)
    evaluate = OmegaConf.create({"probe": {"_target_": "a"}, "intervention": {"_target_": "b"}})
    assert probe_nodes(evaluate) == {"probe": evaluate.probe}
    assert intervention_node(evaluate) == ("intervention", evaluate.intervention)
    assert probe_nodes(OmegaConf.create({})) == {}
    assert intervention_node(OmegaConf.create({})) is None


def test_an_instantiation_error_is_told_under_the_full_key():
    """Hydra's wrapper is unwrapped; a dataclass's own field name gets the config path."""
    outer = InstantiationException("Error in call to target 'vat.probes.JudgmentProbe'")
    outer.__cause__ = ValueError("probe.k=1: a judgment scale needs 2 to 9 points")
    assert P._cause("probes.judgment", outer) == (
        "probes.judgment.k=1: a judgment scale needs 2 to 9 points"
    )
    shots = ValueError("intervention.shots must be non-empty")
    assert P._cause("method.intervention", shots) == "method.intervention.shots must be non-empty"
    assert P._cause("intervention", KeyError("x")) == "intervention: 'x'"


def test_a_reference_is_checked_by_its_own_class_rule():
    def problems(reference, lora):
        node = {"model": {"lora": lora}, "method": {"module": {"reference": reference}}}
        return P._check_reference(OmegaConf.create(node))

    assert problems("adapter_disabled", {"r": 4}) == [] and problems("frozen_copy", None) == []
    (no_lora,) = problems({"_target_": "vat.reference.AdapterDisabled"}, None)
    assert no_lora.startswith("method.module.reference=adapter_disabled with model.lora=null")
    assert problems({"_target_": "vat.data.ItemSet"}, None) == [
        "method.module.reference._target_=vat.data.ItemSet: not a vat.reference.Reference class"
    ]
    (unknown,) = problems("ema", {"r": 4})
    assert unknown.startswith("method.module.reference=ema: expected one of adapter_disabled")


def test_a_secret_from_the_environment_is_named_and_never_shown(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_0123456789abcdef")
    monkeypatch.setenv("VAT_API_KEY", "short")  # under 8 characters: not taken for a secret
    cfg = OmegaConf.create({"model": {"pretrained": "org/model",
                                      "headers": ["Bearer hf_0123456789abcdef"]},
                            "note": "short"})  # fmt: skip
    assert secrets_in_config(cfg) == [
        "model.headers[0] holds the value of $HF_TOKEN: the config is written to config.yaml and to"
        " the loggers; leave secrets in the environment (W&B and Hugging Face read them from there)"
    ]
    with pytest.raises(
        ConfigError, match=r"model\.headers\[0\] holds the value of \$HF_TOKEN"
    ) as e:
        check_config(cfg)
    assert "hf_0123456789abcdef" not in str(e.value)
