"""`vat.strategies`: every strategy config instantiates, DeepSpeed's with its batch sizes from
`batch` and the rest left to the Trainer."""

import pytest
import torch

STRATEGIES = ["auto", "ddp", "deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_strategy_configs_instantiate(compose_cfg, name):
    from hydra.utils import instantiate
    from lightning.pytorch.strategies import DDPStrategy, DeepSpeedStrategy

    cfg = compose_cfg("train", ["model=tiny", f"strategy={name}", "batch.global_size=8"])
    if name == "auto":
        assert "_target_" not in cfg.strategy and cfg.strategy.name == "auto"
        return
    strategy = instantiate(cfg.strategy, _convert_="all")
    if name == "ddp":
        assert isinstance(strategy, DDPStrategy) and not isinstance(strategy, DeepSpeedStrategy)
        return
    from vat.strategies import DeepSpeedStrategy as Fixed

    assert isinstance(strategy, Fixed)
    c = strategy.config
    assert isinstance(c, dict) and c["zero_optimization"]["stage"] == (2 if "zero2" in name else 3)
    # one source of truth: the batch sizes from `batch`, the rest from the Trainer (Lightning
    # fills gradient_accumulation_steps, gradient_clipping and bf16 from it)
    assert c["train_micro_batch_size_per_gpu"] == cfg.batch.micro_size
    assert c["train_batch_size"] == cfg.batch.global_size == 8
    assert not {"gradient_accumulation_steps", "gradient_clipping", "bf16", "fp16"} & set(c)
    offload = name.endswith("offload")
    assert ("offload_optimizer" in c["zero_optimization"]) is offload
    assert ("offload_param" in c["zero_optimization"]) is offload


def test_deepspeed_strategy_filters_only_the_deprecated_collectives_warnings():
    """DeepSpeed calls torch collectives that torch deprecates; a ZeRO-3 run on CPU logged ~3
    FutureWarnings per step per rank. Building the strategy filters exactly those messages."""
    import warnings

    import torch.distributed as dist

    from vat.strategies import DeepSpeedStrategy

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        DeepSpeedStrategy(stage=3)
        t = torch.zeros(2)
        for deprecated in (dist.all_gather_into_tensor, dist.reduce_scatter_tensor):
            with pytest.raises((RuntimeError, ValueError)):  # no process group: the call fails
                deprecated(t, t)  # after torch's deprecation warning
        warnings.warn(
            "`torch.distributed.something_else` is deprecated", FutureWarning, stacklevel=1
        )
        warnings.warn("a DeepSpeed message", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == [
        "`torch.distributed.something_else` is deprecated", "a DeepSpeed message"
    ]  # fmt: skip
