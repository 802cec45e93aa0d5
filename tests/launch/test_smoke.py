"""`vat.launch.smoke`: the GPU smoke table read from a run dir, and `launch/gpu_smoke.py` (train.py
plus smoke.json) end to end on the CPU."""

import subprocess
import sys

import pytest

from tests.launch.helpers import ROOT
from tests.overrides import FAST
from vat import launch as VL


def test_smoke_report_reads_a_run(tmp_path, capsys):
    run = tmp_path / "deepspeed_zero3"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,perf/tokens_per_s,step,train/loss\n"
        "0,100.0,0,0.6931\n0,1000.0,1,0.69\n0,50.0,2,\n0,1200.0,3,0.6\n0,1100.0,3,\n"
    )
    (run / "smoke.json").write_text('{"status": "ok", "wall_s": 61.5, "peak_mem_allocated_gib": 1.5,'
                                    ' "peak_mem_reserved_gib": 2.0}')  # fmt: skip
    (run / "summary.json").write_text('{"final": {"likelihood": {"gain": 0.125}}}')
    m = VL.smoke_metrics(run)
    assert m["step0_loss"] == pytest.approx(0.6931) and m["steps"] == 4
    assert m["tokens_per_s"] == 1050.0  # median after step 0 (eval steps are slow outliers)
    assert VL.main(["smoke-report", str(run), str(tmp_path / "missing")]) == 0
    table = capsys.readouterr().out
    assert (
        "| deepspeed_zero3 | ok | 4 | 0.6931 | 1050 | 1.50 / 2.00 | 62 | likelihood 0.125 |"
        in table
    )
    assert "| missing | ? | 0 | - | - | - / - | - | - |" in table


@pytest.mark.slow
def test_gpu_smoke_helper_runs_train_on_cpu(tmp_path):
    """launch/gpu_smoke.py is train.py plus smoke.json (no GPU here: no memory figures)."""
    out = tmp_path / "run"
    args = [*FAST, "trainer.max_steps=2", "callbacks.vat.every_n_steps=2", f"hydra.run.dir={out}"]
    p = subprocess.run([sys.executable, "launch/gpu_smoke.py", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    m = VL.smoke_metrics(out)
    assert m["status"] == "ok" and m["steps"] == 2 and m["peak_mem_allocated_gib"] is None
    assert m["step0_loss"] == pytest.approx(0.6931, abs=1e-3) and m["tokens_per_s"] > 0
    assert set(m["gain"]) == {"likelihood"}
