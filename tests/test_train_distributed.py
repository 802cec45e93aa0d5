"""`train.py` distributed on 2 CPU processes (gloo): DDP, DeepSpeed ZeRO-2 and ZeRO-3.

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

DeepSpeed runs through `tests.distributed.CPUDeepSpeedStrategy`. The fast checks of the pieces:
the strategy configs in tests/test_strategies.py, the early error without CUDA in
tests/test_trainer.py, the sharded sampler in tests/data/test_sampling.py, the cache builder in
tests/test_cache.py, the frozen copy under ZeRO-2 in tests/test_reference.py.
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
