"""Distributed training on 2 CPU processes (gloo): DDP, DeepSpeed ZeRO-2 and ZeRO-3.

Every run trains the tiny model with DPO on the same global batch of 6 pairs: one process with
gradient accumulation 6, or two with accumulation 3 (18 pairs: 3 whole steps per epoch). Plain SGD
(no scheduler) keeps the weights a linear function of the gradients, so any difference in the
batches, the gradient scaling or the clipping shows up in the trained adapters (Adam's sign-like
first steps would hide a constant factor).

- one process: the reference run (step-0 loss ln 2, the trained weights, the VAT curve);
- DDP with Lightning's own launcher (``python train.py trainer.devices=2``): the same weights and
  the same VAT curve (held-out items scored on both ranks, gathered);
- ZeRO-2 under torchrun: the same weights;
- ZeRO-3 under torchrun, one epoch (3 steps) then resumed with ``ckpt_path=last`` for a 4th step:
  step-0 loss ln 2 (the model was built partitioned and loaded right), the HF export equal to the
  fp32 weights in the sharded checkpoint, and after resuming the same weights and VAT curve as the
  uninterrupted single process (Lightning restarts an epoch's data on a mid-epoch resume, hence
  the epoch-end checkpoint);
- ZeRO-3 with reference=frozen_copy: the reference is sharded and trains like the precomputed one.

DeepSpeed runs through `tests.distributed.CPUDeepSpeedStrategy`. The fast tests at the bottom check
the strategy configs, the early error without CUDA, the sharded sampler and the cache builder.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.overrides import FAST

ROOT = Path(__file__).resolve().parents[1]
# 20 scenes: 18 training pairs for benevolence and 2 held-out scenes (40 items) for the VAT probe.
RUN = [
    *FAST, "data=file", "data.test_fraction=0.1", "batch.micro_size=1", "batch.global_size=6",
    "trainer.max_steps=4", "callbacks.vat.every_n_steps=3", "method.module.scheduler=null",
    "method.module.optimizer._target_=torch.optim.SGD", "method.module.optimizer.lr=0.05",
]  # fmt: skip
TWO_CPUS = ["trainer.devices=2", "trainer.accelerator=cpu"]
CPU_DEEPSPEED = [*TWO_CPUS, "strategy._target_=tests.distributed.CPUDeepSpeedStrategy",
                 "security.allow_targets=[tests.distributed.]"]  # fmt: skip
TIMEOUT = 600


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> Path:
    """The first 20 bundled scenes as a data file (a quicker VAT evaluation than all 48)."""
    bundled = ROOT / "vat" / "data" / "bundled" / "vat_bundled.jsonl"
    rows = [json.loads(line) for line in bundled.read_text().splitlines() if line.strip()]
    scenes = sorted({r["scene_id"] for r in rows})[:20]
    path = tmp_path_factory.mktemp("data") / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows if r["scene_id"] in scenes))
    return path


def train_run(out: Path, items: Path, *args: str, torchrun: bool = False) -> Path:
    """``python train.py`` (or under torchrun, 2 processes) into `out`; fails with its stderr."""
    # One thread per process: two OpenMP threads per process on a shared 2-core machine made the
    # tiny model's steps 4x slower (threads spin-waiting for a descheduled partner).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    launch = [sys.executable]
    if torchrun:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd = [*launch, "train.py", *RUN, f"data.source={items}", *args, f"hydra.run.dir={out}"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-6000:]
    logging.getLogger(__name__).warning("%s: %.0f s", out.name, time.perf_counter() - t0)
    return out


def losses(out: Path) -> dict[int, float]:
    """The logged training loss per step (rank zero's, the last micro-batch of the step)."""
    rows = csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open())
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def adapter(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(out / "hf_adapter" / "adapter_model.safetensors")


def assert_same_weights(a: dict, b: dict, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-4, msg=k)


def assert_same_curve(out: Path, single: Path) -> None:
    """The VAT curve: a row per evaluation step (0, the checkpoint at 3, the end at 4), each the
    single process's."""
    curve, ref = ([json.loads(line) for line in (d / "vat_curve.jsonl").read_text().splitlines()]
                  for d in (out, single))  # fmt: skip
    assert [(r["step"], r["probe"]) for r in curve] == [(s, "likelihood") for s in (0, 3, 4)]
    for a, b in zip(curve, ref, strict=True):
        assert a["gain"] == pytest.approx(b["gain"], abs=1e-5), a["step"]
        assert a["shift"] == pytest.approx(b["shift"], abs=1e-5), a["step"]


@pytest.fixture(scope="module")
def single(tmp_path_factory, items) -> Path:
    return train_run(tmp_path_factory.mktemp("single") / "run", items)


@pytest.mark.slow
def test_single_process_reference_run(single):
    assert losses(single)[0] == pytest.approx(math.log(2), abs=1e-5)
    # the adapters moved (SGD on lora_B from zero), so the comparisons below are not vacuous
    assert max(float(v.abs().max()) for k, v in adapter(single).items() if "lora_B" in k) > 1e-3


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(tmp_path, items, single):
    """Lightning launches rank 1 itself (same command, same hydra.run.dir); VAT callback on."""
    out = train_run(tmp_path / "ddp", items, *TWO_CPUS, "strategy=ddp")
    assert losses(out)[0] == pytest.approx(math.log(2), abs=1e-5)
    assert_same_weights(adapter(out), adapter(single))
    assert_same_curve(out, single)


@pytest.mark.slow
def test_zero2_two_processes_match_single_process(tmp_path, items, single):
    out = train_run(tmp_path / "zero2", items, *CPU_DEEPSPEED, "strategy=deepspeed_zero2",
                    torchrun=True)  # fmt: skip
    assert losses(out)[0] == pytest.approx(math.log(2), abs=1e-5)
    assert_same_weights(adapter(out), adapter(single))
    assert (out / "checkpoints" / "last.ckpt").is_dir()  # a DeepSpeed checkpoint directory


@pytest.fixture(scope="module")
def zero3(tmp_path_factory, items) -> dict[str, Path]:
    """ZeRO-3: one epoch, 3 steps (checkpoint at step 3), exported; then resumed to step 4."""
    out = tmp_path_factory.mktemp("zero3") / "run"
    args = [*CPU_DEEPSPEED, "strategy=deepspeed_zero3"]
    train_run(out, items, *args, "trainer.max_steps=3", torchrun=True)
    first = {
        "losses": losses(out),
        "adapter": adapter(out),
        "checkpoint": fp32_checkpoint(out / "checkpoints" / "last.ckpt"),
    }
    train_run(out, items, *args, "ckpt_path=last", torchrun=True)
    return {"out": out, **first}


def fp32_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The full fp32 state dict of the LightningModule, gathered from a sharded checkpoint."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    return get_fp32_state_dict_from_zero_checkpoint(str(path), tag="checkpoint")


@pytest.mark.slow
def test_zero3_step0_loss_is_ln2(zero3):
    """The policy equals the reference at step 0 only if ZeRO-3 loaded the base weights into the
    partitioned model (HfDeepSpeedConfig) and LoRA's B started at zero."""
    assert zero3["losses"][0] == pytest.approx(math.log(2), abs=1e-5)


@pytest.mark.slow
def test_zero3_export_gathers_the_trained_weights(zero3):
    """hf_adapter of the 3-step run == the adapter weights in its sharded checkpoint (fp32)."""
    ckpt = zero3["checkpoint"]
    exported = zero3["adapter"]
    assert exported and all(k.startswith("base_model.") for k in exported)
    for k, v in exported.items():
        full = ckpt["model." + k.removesuffix(".weight") + ".default.weight"]
        torch.testing.assert_close(v, full, atol=1e-7, rtol=1e-6, msg=k)
    assert max(float(v.abs().max()) for k, v in exported.items() if "lora_B" in k) > 1e-3


@pytest.mark.slow
def test_zero3_resume_matches_uninterrupted_single_process(zero3, single):
    out = zero3["out"]
    assert_same_weights(adapter(out), adapter(single))
    # the merged HF model loads on its own and holds the same weights as the single-process one
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "hf_model").state_dict()
    ref = AutoModelForCausalLM.from_pretrained(single / "hf_model").state_dict()
    assert_same_weights(merged, ref, atol=1e-5)
    # the VAT curve (ZeRO-3: every forward collective) continued from the restored step, each step
    # once, with the single process's gains
    assert_same_curve(out, single)


@pytest.mark.slow
def test_zero3_frozen_copy_reference_is_sharded(tmp_path, items, single):
    """reference=frozen_copy under ZeRO-3: the reference model is partitioned like the policy (each
    rank's checkpoint holds half of every reference weight), and training matches the single
    process that used precomputed reference log-probs."""
    out = train_run(tmp_path / "frozen", items, *CPU_DEEPSPEED, "strategy=deepspeed_zero3",
                    "method.module.reference=frozen_copy", torchrun=True)  # fmt: skip
    assert losses(out)[0] == pytest.approx(math.log(2), abs=1e-5)
    assert_same_weights(adapter(out), adapter(single))
    path = out / "checkpoints" / "last.ckpt" / "checkpoint"
    states = torch.load(path / "zero_pp_rank_0_mp_rank_00_model_states.pt", weights_only=False)
    shapes, shards = states["frozen_param_shapes"], states["frozen_param_fragments"]
    ref = [k for k in shards if k.startswith("ref_model.")]
    assert len(ref) == len([k for k in shapes if k.startswith("model.") and "lora" not in k])
    assert all(shards[k].numel() == -(-shapes[k].numel() // 2) for k in ref)


# ---------------------------------------------------------------------------- fast checks


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


def test_sampler_shards_one_permutation_across_ranks(monkeypatch):
    """Rank r takes perm[r::world]: each step's micro-batches on all ranks hold exactly the
    examples one process would see in that step (here 17 examples, 2 ranks, 1 example each)."""
    from vat.data.sampling import EpochShuffleSampler

    one = EpochShuffleSampler(17, seed=3)
    one.set_epoch(2)
    order = list(one)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(EpochShuffleSampler, "_shard", staticmethod(lambda r=rank: (r, 2)))
        s = EpochShuffleSampler(17, seed=3)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(s) == 9
    assert [x for pair in zip(*shards, strict=True) for x in pair] == [*order, order[0]]


def test_frozen_copy_under_zero2_warns(tiny_dir, caplog):
    """ZeRO-1/2 do not shard weights: a frozen reference copy is whole on every GPU."""
    from functools import partial
    from types import SimpleNamespace

    from vat.losses import dpo_sigmoid_loss
    from vat.modules import DPOModule
    from vat.strategies import DeepSpeedStrategy

    m = DPOModule(model={"name": "tiny", "pretrained": str(tiny_dir), "lora": {"r": 4}},
                  loss=partial(dpo_sigmoid_loss, beta=0.1), optimizer=None,
                  reference="frozen_copy")  # fmt: skip
    m._trainer = SimpleNamespace(
        strategy=DeepSpeedStrategy(config={"zero_optimization": {"stage": 2}})
    )
    with caplog.at_level(logging.WARNING, logger="vat.modules.dpo"):
        m.configure_model()
    assert "frozen_copy under DeepSpeed ZeRO-2" in caplog.text and "precomputed" in caplog.text
    assert m.hf_zero3 is None and m.ref_model is not None


def test_build_once_tolerates_a_lock_that_does_not_hold(tmp_path, monkeypatch):
    """All ranks build the reference log-probs through `build_once`: with the file lock one builds
    and the others read; where the lock does not hold across machines, the later of two finished
    builders drops its entry instead of failing (the entries are equal)."""
    import contextlib

    import vat.cache

    monkeypatch.setattr(vat.cache, "FileLock", lambda path: contextlib.nullcontext())
    target = tmp_path / "entry"
    with vat.cache.build_once(target) as slow:
        (slow / "ref.pt").write_text("slow")
        with vat.cache.build_once(target) as fast:  # another node, finishing first
            (fast / "ref.pt").write_text("fast")
    assert (target / "ref.pt").read_text() == "fast"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]  # no temporary left behind
    with vat.cache.build_once(target) as again:
        assert again is None
