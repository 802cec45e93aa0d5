"""Crashes: SIGKILL between checkpoints and during a checkpoint write, SIGTERM, a NaN loss, a full
disk. Each training run is a child process under `tests.reliability.faults`; every interrupted run
is resumed with ``ckpt_path=last`` and must end exactly where the uninterrupted run ends.

The pieces on their own: atomic checkpoint writes and their recovery in tests/test_checkpoint.py,
the sampler's mid-epoch resume in tests/data/test_sampling.py, the curve's resume in
tests/callbacks/test_vat.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.overrides import FAST

ROOT = Path(__file__).resolve().parents[2]
# 34 DPO pairs in batches of 17: 2 optimizer steps per epoch; the VAT curve and a checkpoint
# (epoch=E-step=S.ckpt, then last.ckpt) every 2 steps; 8 steps.
ARGS = [*FAST, "trainer.max_steps=8", "callbacks.vat.every_n_steps=2", "batch.micro_size=17",
        "batch.global_size=17", "method.module.reference=precomputed"]  # fmt: skip
STEPS = [0, 2, 4, 6, 8]


def run_train(out: Path, *extra: str, fault: str = "", multirun: bool = False):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VAT_FAULT": fault, "OMP_NUM_THREADS": "1"}
    where = f"hydra.sweep.dir={out}" if multirun else f"hydra.run.dir={out}"
    cmd = [sys.executable, "-m", "tests.reliability.faults", "train.py", *(["-m"] if multirun else []),
           *ARGS, *extra, where]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def curve(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "vat_curve.jsonl").read_text().splitlines()]


def ckpt_step(path: Path) -> int:
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"]


def adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "hf_adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    p = run_train(out)
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def assert_same_as_reference(out: Path, ref: Path) -> None:
    rows, ref_rows = curve(out), curve(ref)
    steps = [(r["step"], r["probe"]) for r in rows]
    assert steps == sorted(set(steps)) == [(s, "likelihood") for s in STEPS]  # none twice or lost
    for a, b in zip(rows, ref_rows, strict=True):
        assert a["gain"] == pytest.approx(b["gain"], abs=1e-6), a["step"]
        assert a["gnd_l1"] == pytest.approx(b["gnd_l1"], abs=1e-5, nan_ok=True), a["step"]
    got, want = adapter(out), adapter(ref)
    assert got.keys() == want.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-6, rtol=0, msg=k)
    assert ckpt_step(out / "checkpoints" / "last.ckpt") == 8
    assert not [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    summary = json.loads((out / "summary.json").read_text())
    ref_summary = json.loads((ref / "summary.json").read_text())
    assert summary["final"]["likelihood"]["gain"] == pytest.approx(
        ref_summary["final"]["likelihood"]["gain"], abs=1e-6
    )


@pytest.mark.slow
def test_sigkill_between_checkpoints_resumes_to_the_same_run(reference, tmp_path):
    out = tmp_path / "run"
    p = run_train(out, fault="kill_at_step:5")
    assert p.returncode == -9, p.stderr[-3000:]
    assert ckpt_step(out / "checkpoints" / "last.ckpt") == 4
    assert [r["step"] for r in curve(out)] == [0, 2, 4]
    p = run_train(out, "ckpt_path=last")
    assert p.returncode == 0, p.stderr[-3000:]
    assert_same_as_reference(out, reference)


@pytest.mark.slow
def test_sigkill_during_checkpoint_write_never_loads_a_partial_checkpoint(reference, tmp_path):
    """Writes: step 2 (epoch=0-step=2.ckpt, last.ckpt), step 4 (epoch=1-step=4.ckpt, last.ckpt):
    killed half-way through the 4th, the new last.ckpt."""
    out = tmp_path / "run"
    p = run_train(out, fault="kill_in_checkpoint_write:4")
    assert p.returncode == -9, p.stderr[-3000:]
    ckpts = out / "checkpoints"
    partial = [q for q in ckpts.iterdir() if ".partial" in q.name]
    assert len(partial) == 1 and partial[0].name.startswith(".last.ckpt.partial-")
    assert ckpt_step(ckpts / "last.ckpt") == 2  # the previous last.ckpt, whole
    for q in ckpts.glob("*.ckpt"):
        ckpt_step(q)  # every visible checkpoint loads (weights_only)
    with pytest.raises(Exception):  # noqa: B017 - the partial file is really truncated
        torch.load(partial[0], weights_only=True)
    p = run_train(out, "ckpt_path=last")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "removed unfinished .last.ckpt.partial-" in p.stdout + p.stderr  # Hydra logs to stdout
    assert_same_as_reference(out, reference)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_cleanly(reference, tmp_path):
    out = tmp_path / "run"
    p = run_train(out, fault="sigterm_at_step:2")  # during step 3, which has no checkpoint
    assert p.returncode == 0, p.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"]["step"] == 3
    assert summary["interrupted"]["checkpoint"].endswith("last.ckpt")
    assert ckpt_step(out / "checkpoints" / "last.ckpt") == 3
    assert not (out / "hf_model").exists()  # no export of an unfinished run
    assert [r["step"] for r in curve(out)] == [0, 2]
    p = run_train(out, "ckpt_path=last")
    assert p.returncode == 0, p.stderr[-3000:]
    assert_same_as_reference(out, reference)


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_fails_the_sweep_cell(tmp_path):
    p = run_train(tmp_path, "value=benevolence", fault="nan_loss_at_step:3", multirun=True)
    assert p.returncode != 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (cell,) = manifest["cells"].values()
    assert cell["status"] == "failed"
    assert "NonFiniteLossError" in cell["error"] and "optimizer step 3" in cell["error"]
    assert "Last good checkpoint" in cell["error"] and "last.ckpt" in cell["error"]
    cell_dir = Path(cell["dir"])
    assert ckpt_step(cell_dir / "checkpoints" / "last.ckpt") == 2  # the last good state, whole
    assert [r["step"] for r in curve(cell_dir)] == [0, 2]


@pytest.mark.slow
def test_full_disk_during_a_checkpoint_write_is_a_clear_error(tmp_path):
    out = tmp_path / "run"
    p = run_train(out, fault="enospc_in_checkpoint_write:4")
    assert p.returncode != 0
    assert "CheckpointWriteError" in p.stderr
    assert f"could not write checkpoint {out / 'checkpoints' / 'last.ckpt'}" in p.stderr
    assert "No space left on device" in p.stderr and "MiB free" in p.stderr
    ckpts = out / "checkpoints"
    assert ckpt_step(ckpts / "last.ckpt") == 2
    assert not [q for q in ckpts.iterdir() if ".partial" in q.name]  # cleaned up at once
