"""Each benchmark script runs end to end in its --smoke mode (the peer is skipped when TRL is
missing, as in this venv) and prints its table."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _smoke(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "|---|" in proc.stdout, proc.stdout[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_dpo_smoke():
    out = _smoke("bench_dpo.py")
    for ref in ("precomputed", "adapter_disabled", "frozen_copy"):
        assert f"ours {ref}" in out
    try:
        import trl  # noqa: F401
    except ImportError:
        assert "peer is missing" in out


@pytest.mark.slow
def test_bench_callback_smoke():
    out = _smoke("bench_callback.py")
    assert "share of fit" in out and "peer: hooks off" in out


@pytest.mark.slow
def test_bench_train_scaling_smoke():
    out = _smoke("bench_train_scaling.py")
    assert "Scaling exponent" in out


@pytest.mark.slow
def test_bench_probe_smoke():
    out = _smoke("bench_probe.py")
    for row in ("ours, batch 16 (probe default)", "ours, batch 8", "naive loop"):
        assert row in out
    assert "scene context" in out and "probe prompt" in out and "chat template" in out
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        assert "peer is missing" in out


@pytest.mark.slow
def test_bench_mfu_smoke():
    out = _smoke("bench_mfu.py")
    assert "matmul peak fp32" in out and "MFU (useful)" in out
    assert "training, full FT (6N)" in out and "training, LoRA" in out


@pytest.mark.slow
def test_bench_eval_scaling_smoke():
    out = _smoke("bench_eval_scaling.py")
    assert "R^2" in out and "ms/item" in out
