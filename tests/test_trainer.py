"""`vat.trainer`: the gradient accumulation derived in one place, and DeepSpeed without a GPU
refused before anything loads (`build_strategy`)."""

import pytest
import torch


@pytest.mark.parametrize("accelerator", ["cpu", "auto"])
def test_deepspeed_without_cuda_fails_before_loading_anything(
    compose_cfg, monkeypatch, accelerator
):
    import vat.train

    if torch.cuda.is_available() and accelerator == "auto":
        pytest.skip("a CUDA GPU is visible")
    monkeypatch.setattr(vat.train, "build_items", lambda cfg: pytest.fail("data loaded"))
    cfg = compose_cfg(
        "train", ["model=tiny", "strategy=deepspeed_zero3", f"trainer.accelerator={accelerator}"]
    )
    with pytest.raises(RuntimeError, match=r"DeepSpeed\) needs CUDA GPUs.*strategy=ddp"):
        vat.train.train(cfg)


def test_accumulation_is_derived_in_one_place():
    from omegaconf import OmegaConf

    from vat.trainer import accumulation_steps, world_size

    assert accumulation_steps(64, 4, 8) == 2
    assert world_size(OmegaConf.create({"devices": 8, "num_nodes": 2})) == 16
    assert world_size(OmegaConf.create({"devices": [0, 1], "num_nodes": 1})) == 2
    with pytest.raises(
        ValueError,
        match=r"batch.global_size=10 must be a positive multiple of batch.micro_size \(4\) x world size \(1\)",
    ):
        accumulation_steps(10, 4, 1)
    with pytest.raises(ValueError, match=r"trainer.devices='auto'"):
        world_size(OmegaConf.create({"devices": "auto", "num_nodes": 1}))


def test_last_ckpt_stays_the_newest_when_another_writer_left_one(compose_cfg, tmp_path):
    """`PreemptionCallback` writes ``last.ckpt`` on SIGTERM (``scontrol requeue`` sends one); the
    resumed run's ModelCheckpoint then wrote ``last-v1.ckpt`` and left ``last.ckpt`` stale. Built
    by `build_callbacks`, it overwrites ``last.ckpt``."""
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.demos.boring_classes import BoringModel

    from vat.trainer import build_callbacks

    cfg = compose_cfg("train", ["model=tiny", "callbacks.vat.every_n_steps=2"])
    (ckpt_dir := tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (ckpt_dir / "last.ckpt").write_bytes(b"left by the preemption callback")
    callbacks = [c for c in build_callbacks(cfg, None) if isinstance(c, ModelCheckpoint)]
    assert str(ckpt_dir) == callbacks[0].dirpath
    trainer = L.Trainer(max_steps=2, callbacks=callbacks, logger=False, accelerator="cpu",
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(BoringModel())
    assert sorted(p.name for p in ckpt_dir.glob("*.ckpt")) == ["epoch=0-step=2.ckpt", "last.ckpt"]
    assert torch.load(ckpt_dir / "last.ckpt", weights_only=False)["global_step"] == 2
