"""`vat.sweep.cell`: a cell's config compared with the one already in its dir, and a whole sweep
through `train.py -m` end to end: a failed cell recorded, done cells skipped, a killed cell
resumed, the report written (and logged to W&B offline)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

from tests.overrides import FAST as TINY
from tests.sweep.helpers import ROOT, compose_multirun
from vat.sweep.cell import config_diff
from vat.sweep.manifest import read_manifest
from vat.sweep.names import planned_cells


def test_config_diff_ignores_paths_and_names_changed_keys():
    old = {"paths": {"output_dir": "/a/run"}, "trainer": {"max_steps": 10},
           "callbacks": {"checkpoint": {"dirpath": "/a/run/checkpoints"}}, "ckpt_path": None}  # fmt: skip
    new = {"paths": {"output_dir": "/b/run"}, "trainer": {"max_steps": 20},
           "callbacks": {"checkpoint": {"dirpath": "/b/run/checkpoints"}}, "ckpt_path": "last"}  # fmt: skip
    assert config_diff(old, new) == ["trainer.max_steps: 10 -> 20"]
    assert config_diff(old, old) == []


# ---------------------------------------------------------------------------- end to end
FAST = [*TINY, "trainer.max_steps=2", "callbacks.vat.every_n_steps=1"]
GRID = ["value=benevolence,security", "method=sft,dpo"]


def _sweep(sweep_dir, cache, extra=()):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "train.py", "-m", *FAST, *GRID, *extra, f"hydra.sweep.dir={sweep_dir}",
         f"paths.cache_dir={cache}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip


def _by_cell(cells: dict) -> dict:
    """Manifest entries keyed by (method, value) (cell names also carry the test's overrides)."""
    out = {}
    for c in cells.values():
        o = dict(x.split("=", 1) for x in c["overrides"])
        out[(o["method"], o["value"])] = c
    return out


@pytest.mark.slow
def test_sweep_records_failures_skips_done_cells_resumes_and_reports(tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    # another experiment's run sits where the (sft, security) cell will go
    GlobalHydra.instance().clear()
    plan = {(c["overrides"][-1], c["overrides"][-2]): c["name"] for c in planned_cells(
        compose_multirun([*FAST], ["method=sft,dpo", "value=benevolence,security"]))}  # fmt: skip
    assert all(len(n) <= 160 for n in plan.values())  # long override lists are hashed
    stale = sweep / plan[("value=security", "method=sft")]
    stale.mkdir(parents=True)
    (stale / "config.yaml").write_text("trainer:\n  max_steps: 99\n")

    # 1st run: the stale cell fails, the other three finish, the report lists the failure
    p = _sweep(sweep, cache)
    assert p.returncode != 0
    assert "1 of 4 sweep cells failed" in p.stderr, p.stderr[-3000:]
    cells = _by_cell(read_manifest(sweep)["cells"])
    assert {k: c["status"] for k, c in cells.items()} == {
        ("sft", "benevolence"): "done",
        ("dpo", "benevolence"): "done",
        ("sft", "security"): "failed",
        ("dpo", "security"): "done",
    }
    err = cells[("sft", "security")]["error"]
    assert "different config" in err and "trainer.max_steps" in err
    assert (stale / "config.yaml").read_text() == "trainer:\n  max_steps: 99\n"  # nothing lost
    report = (sweep / "report" / "report.md").read_text()
    assert stale.name in report and "failed" in report
    assert len(pd.read_csv(sweep / "report" / "sweep_table.csv")) == 3
    # work shared across cells: one pre state per probe, one reference per DPO training set
    assert len([d for d in (cache / "states").iterdir() if d.is_dir()]) == 1
    assert len([d for d in (cache / "reference").iterdir() if d.is_dir()]) == 2

    # a DPO cell that was killed after its step-1 checkpoint; the stale dir is moved away
    shutil.rmtree(stale)
    killed = Path(cells[("dpo", "security")]["dir"])
    ckpts = killed / "checkpoints"
    (ckpts / "last.ckpt").unlink()
    shutil.copy(ckpts / "epoch=0-step=1.ckpt", ckpts / "last.ckpt")
    st = json.loads((killed / "status.json").read_text())
    (killed / "status.json").write_text(json.dumps({**st, "status": "running"}))
    done = Path(cells[("dpo", "benevolence")]["dir"]) / "summary.json"
    done_before = done.stat().st_mtime_ns

    # 2nd run, same command: done cells skipped, the killed one resumed, the failed one re-run
    p = _sweep(sweep, cache)
    assert p.returncode == 0, p.stderr[-3000:]
    cells = _by_cell(read_manifest(sweep)["cells"])
    assert all(c["status"] == "done" for c in cells.values())
    # the done cells are not even launched (the skip_done sweeper; under submitit: no job queued)
    assert "2 of 4 cells are done and are not launched again" in p.stdout + p.stderr
    assert not cells[("dpo", "benevolence")].get("skipped_at")
    assert done.stat().st_mtime_ns == done_before
    assert cells[("dpo", "security")]["resumed_from"].endswith("last.ckpt")
    assert cells[("dpo", "security")]["attempt"] == 2
    rows = [json.loads(x) for x in (killed / "vat_curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2]

    # the report of the 2x2 sweep: 4 rows, the tax matrices and trajectories
    out = sweep / "report"
    table = pd.read_parquet(out / "sweep_table.parquet")
    assert len(table) == 4 and set(table["method"]) == {"sft", "dpo"}
    assert set(table["value"]) == {"benevolence", "security"} and set(table["point"]) == {"step 2"}
    assert table[["gain", "gain_lo", "gain_hi", "nvat_offdiag", "nvat_offdiag_excess", "nvat_offdiag_null",
                  "p_gain", "p_gain_bh", "p_nvat", "p_nvat_bh"]].notna().all().all()  # fmt: skip
    assert (table["p_gain_bh"] >= table["p_gain"] - 1e-12).all()
    assert (table["gain_lo"] <= table["gain"]).all() and (table["gain"] <= table["gain_hi"]).all()
    tau = pd.read_csv(out / "tax_matrix.csv")
    assert len(tau) == 4 * 9  # every non-target value of every cell
    traj = pd.read_csv(out / "trajectories.csv")
    assert sorted(traj.groupby("cell").size()) == [3, 3, 3, 3]  # steps 0, 1, 2
    for f in ("tax_matrix_tiny_dpo_likelihood.png", "tax_matrix_tiny_sft_likelihood.png",
              "trajectories_likelihood.png", "report.html"):  # fmt: skip
        assert (out / f).stat().st_size > 1000, f
    assert "Cells not finished" in (out / "report.md").read_text()

    # the same report from the command line, and logged to W&B (offline) as a table and images
    (out / "report.md").unlink()
    p = subprocess.run([sys.executable, "evaluate.py", f"sweep_dir={sweep}",
                        f"hydra.run.dir={tmp_path / 'ev'}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "report.md").is_file()
    from vat.report.sweep import build_sweep_report

    build_sweep_report(sweep, wandb_cfg={"project": "vat", "group": "train-t",
                                         "save_dir": str(tmp_path / "wb")})  # fmt: skip
    assert list((tmp_path / "wb" / "wandb").glob("offline-run-*"))
