"""Bad configs fail early and say what is wrong: the key, the bad value, what is expected.

Unknown option names, and a value outside a choice field's options (a `vat.settings.Choice` in the
schema), fail when Hydra composes the config; a number outside its range, or a combination that
cannot work fails in `vat.run.setup` (via `vat.preflight.check_config`), before any data or model
loads and before the run dir exists.
(DeepSpeed without a GPU:
tests/test_trainer.py::test_deepspeed_without_cuda_fails_before_loading_anything; `check_config`
on its own, and every shipped option passing it: tests/test_preflight.py.)
"""

import os
import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from vat.preflight import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


# ------------------------------------------------------------------ unknown names: compose time
@pytest.mark.parametrize(
    ("config_name", "override", "group"),
    [("train", "method=ppo", "method"), ("train", "model=gpt5", "model"),
     ("train", "probe@probes.likelihood=vibes", "probe"), ("evaluate", "probe=vibes", "probe"),
     ("evaluate", "intervention=hypnosis", "intervention"), ("train", "strategy=fsdp", "strategy"),
     ("train", "logger=mlflow", "logger"), ("train", "data=imagenet", "data"),
     ("evaluate", "value=kindness", "value")],
)  # fmt: skip
def test_unknown_option_fails_at_compose_listing_the_valid_ones(
    compose_cfg, config_name, override, group
):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(config_name, [override])
    msg = str(e.value)
    bad = override.partition("=")[2]
    assert bad in msg and f"Available options in '{group}'" in msg
    assert all(o in msg for o in options(group)), msg


# ------------------------------------------------------------------ bad choices: compose time
# (config, override, [substrings of the message: key=value, the options]); Hydra's message names
# the override, OmegaConf's (its cause, printed below it) the options and the full key
BAD_CHOICES = [
    ("train", "model.dtype=float64", ["model.dtype=float64", "float32, bfloat16, float16"]),
    ("evaluate", "model.padding_side=middle", ["model.padding_side=middle", "left, right"]),
    ("evaluate", "metrics.coupling_method=pearson",
     ["metrics.coupling_method=pearson", "spearman, kendall"]),
    ("evaluate", "metrics.bootstrap_scheme=jackknife",
     ["metrics.bootstrap_scheme=jackknife", "bootstrap, subsample"]),
    ("evaluate", "metrics.eps_units=nats", ["metrics.eps_units=nats", "pre_sd, score"]),
    ("train", "metrics.eps_units=sd", ["metrics.eps_units=sd", "pre_sd, score"]),
    ("train", "metrics.level=all", ["metrics.level=all", "value, both"]),
    ("train", "data.format=xml", ["data.format=xml", "auto, jsonl, json, csv, parquet, hf"]),
]  # fmt: skip


@pytest.mark.parametrize(("config_name", "override", "expected"), BAD_CHOICES,
                         ids=[c[1] for c in BAD_CHOICES])  # fmt: skip
def test_bad_choice_fails_at_compose_naming_the_key_and_the_options(
    compose_cfg, config_name, override, expected
):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(config_name, ["model=tiny", override])
    msg = f"{e.value}\n{e.value.__cause__}"
    assert f"full_key: {override.partition('=')[0]}" in msg, msg
    for part in expected:
        assert part in msg, f"{part!r} not in: {msg}"


# ------------------------------------------------------------------ bad values: setup time
def _no_data_no_model(monkeypatch):
    """Fail the test if anything past the config checks runs."""
    import vat.evaluate
    import vat.models.loading
    import vat.run
    import vat.train

    def boom(*a, **k):
        raise AssertionError("data or a model was loaded before the config was checked")

    monkeypatch.setattr(vat.run, "build_items", boom)
    monkeypatch.setattr(vat.train, "build_items", boom)
    monkeypatch.setattr(vat.evaluate, "build_items", boom)
    monkeypatch.setattr(vat.models.loading, "resolve_path", boom)


def _fails_in_setup(compose_cfg, monkeypatch, config_name, overrides) -> str:
    """Run the real entry function; it must raise `ConfigError` before anything loads."""
    _no_data_no_model(monkeypatch)
    cfg = compose_cfg(config_name, ["model=tiny", *overrides])
    out = cfg.paths.output_dir
    if config_name == "train":
        from vat.train import train as run
    else:
        from vat.evaluate import evaluate as run
    with pytest.raises(ConfigError) as e:
        run(cfg)
    assert not os.path.exists(out), "the run dir was created for a config that cannot run"
    return str(e.value)


# (config, overrides, [substrings the message must hold: key=value and what is expected])
BAD_VALUES = [
    ("train", ["method=dpo", "method.module.reference=adapter_disabled", "model.lora=null"],
     ["method.module.reference=adapter_disabled with model.lora=null", "set model.lora",
      "precomputed"]),
    ("train", ["method.module.reference=ema"],
     ["method.module.reference=ema", "adapter_disabled, precomputed, frozen_copy"]),
    ("train", ["probes.judgment.k=1"], ["probes.judgment.k=1", "2 to 9 points"]),
    ("train", ["probes.judgment.k=0"], ["probes.judgment.k=0", "2 to 9 points"]),
    ("train", ["probes.judgment.k=10"], ["probes.judgment.k=10", "2 to 9 points"]),
    ("evaluate", ["probe=judgment", "probe.k=1"], ["probe.k=1", "2 to 9 points"]),
    ("train", ["probes.judgment.orders=[sideways]"],
     ["probes.judgment.orders", "['forward', 'reverse']", "sideways"]),
    ("evaluate", ["probe.normalize=median"], ["probe.normalize", "'mean' or 'sum'", "median"]),
    ("evaluate", ["intervention.shots=[]"], ["intervention.shots", "non-empty", "[]"]),
    ("evaluate", ["intervention.shots=[-2]"], ["intervention.shots", "k >= 0", "[-2]"]),
    ("evaluate", ["intervention.shots=[0,2]", "intervention.system_prompt=null"],
     ["intervention.shots contains 0 and system_prompt is null", "no intervention"]),
    ("train", ["method=prompting", "method.intervention.shots=[]"],
     ["method.intervention.shots", "non-empty"]),
    ("evaluate", ["intervention=none"], ["intervention=none with post_model=null",
                                         "nothing to compare", "post_model=<"]),
    ("evaluate", ["intervention=none", "post_model=/no/such/ckpt"],
     ["post_model=/no/such/ckpt: no such directory"]),
    ("train", ["value.name=kindness"], ["value.name=kindness", "benevolence", "universalism"]),
    ("evaluate", ["metrics.ci=95"], ["metrics.ci=95", "(0, 1)"]),
    ("evaluate", ["metrics.subsample_frac=0"], ["metrics.subsample_frac=0", "(0, 1]"]),
    ("evaluate", ["metrics.n_bootstrap=-1"], ["metrics.n_bootstrap=-1", ">= 0"]),
    ("evaluate", ["metrics.n_permutations=-5"], ["metrics.n_permutations=-5", ">= 0"]),
    ("evaluate", ["metrics.eps=-0.1"], ["metrics.eps=-0.1", ">= 0"]),
    ("evaluate", ["metrics.min_overlap=1"], ["metrics.min_overlap=1", ">= 2"]),
    ("evaluate", ["metrics.hub_k=-1"], ["metrics.hub_k=-1", ">= 0"]),
    ("train", ["model.lora.dropout=1.0"], ["model.lora.dropout=1.0", "[0, 1)"]),
    ("train", ["model.lora.r=0"], ["model.lora.r=0", "rank >= 1"]),
    ("train", ["callbacks.vat.every_n_steps=0"], ["callbacks.vat.every_n_steps=0", ">= 1"]),
    ("train", ["batch.micro_size=0"], ["batch.micro_size=0", ">= 1"]),
    ("train", ["~probe@probes.judgment", "~probe@probes.likelihood"],
     ["probes is empty", "+probe@probes.likelihood=likelihood"]),
    ("evaluate", ["model.build=null", "model.pretrained=null"],
     ["model.pretrained=null and model.build=null"]),
    ("train", ["method=dpo_anchored", "method.anchor_per_pair=0"],
     ["method.module.anchor is set but method.anchor_per_pair is 0"]),
    ("train", ["method=dpo_anchored", "method.module.anchor=null"],
     ["method.anchor_per_pair=1 with method.module.anchor=null", "method=dpo_anchored"]),
    ("train", ["method=dpo_anchored", "method.module.anchor_weight=-1"],
     ["method.module.anchor_weight=-1", "finite number >= 0"]),
    ("train", ["method=dpo_anchored", "method.anchor_per_pair=-2"],
     ["method.anchor_per_pair=-2", "integer >= 0"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("config_name", "overrides", "expected"), BAD_VALUES, ids=[" ".join(c[1]) for c in BAD_VALUES]
)
def test_bad_value_or_combination_fails_in_setup_before_anything_loads(
    compose_cfg, monkeypatch, config_name, overrides, expected
):
    msg = _fails_in_setup(compose_cfg, monkeypatch, config_name, overrides)
    for part in expected:
        assert part in msg, f"{part!r} not in: {msg}"


def test_every_problem_is_listed_at_once(compose_cfg, monkeypatch):
    msg = _fails_in_setup(
        compose_cfg, monkeypatch, "train",
        ["probes.judgment.k=1", "metrics.ci=2", "model.lora.r=0", "value.name=greed"],
    )  # fmt: skip
    lines = msg.splitlines()[1:]
    assert len(lines) == 4 and all(re.match(r"  \S+=", line) for line in lines), msg


def test_too_many_shots_fail_once_the_items_load_before_any_model(compose_cfg, monkeypatch):
    """The largest k needs k express actions of the target in the train split: known from the
    items alone, so it fails before the model loads (not after the pre state is scored)."""
    import vat.models.loading
    from vat.evaluate import evaluate

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the shots were checked")

    monkeypatch.setattr(vat.models.loading, "resolve_path", boom)
    cfg = compose_cfg("evaluate", ["model=tiny", "intervention.shots=[2,500]", "value=power"])
    with pytest.raises(ConfigError, match=r"intervention\.shots=\[2, 500\]: .*500.* only \d+"):
        evaluate(cfg)
