"""Sweeps: cell planning, the manifest, skip/resume of cells, presets and the sweep report."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from tests.overrides import FAST as TINY
from vat.sweep.cell import config_diff
from vat.sweep.manifest import read_manifest, update_manifest
from vat.sweep.names import planned_cells

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_multirun(overrides, sweep_args=()):
    """The config a multirun starts from; ``sweep_args`` are command-line sweeps (a=x,y)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = [*overrides, *sweep_args]
        cfg.hydra.runtime.output_dir = "/tmp/vat-test-run"
    HydraConfig.instance().set_config(cfg)
    return cfg


def test_planned_cells_follow_the_sweepers_product_and_names():
    cfg = compose_multirun(["model=tiny"], ["value=benevolence,security", "method=sft,dpo"])
    cells = planned_cells(cfg)
    assert [c["name"] for c in cells] == [
        "method=sft,model=tiny,value=benevolence",
        "method=dpo,model=tiny,value=benevolence",
        "method=sft,model=tiny,value=security",
        "method=dpo,model=tiny,value=security",
    ]
    assert cells[0]["overrides"] == ["model=tiny", "value=benevolence", "method=sft"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_with_its_grid(preset):
    cfg = compose_multirun([f"experiment={preset}"])
    assert cfg.sweep.name == preset
    cells = planned_cells(cfg)
    assert cells and all("experiment" not in c["name"] for c in cells)
    # every cell composes (Hydra would also check this before launching)
    for c in cells:
        cell_cfg = compose_multirun(c["overrides"])
        OmegaConf.to_container(cell_cfg.trainer, resolve=True)
    values = {c["overrides"][0] for c in cells}
    if preset in ("all_values", "paper_prompting", "paper_sft_dpo"):
        assert len(values) == 10
    if preset == "paper_prompting":
        assert list(cfg.method.intervention.shots) == [0, 2, 4, 8] and len(cells) == 10
    if preset == "paper_sft_dpo":
        assert len(cells) == 20
        assert cfg.trainer.max_steps == 3 * cfg.callbacks.vat.every_n_steps  # three checkpoints
        assert list(cfg.probes.judgment.orders) == [
            "forward",
            "reverse",
        ]  # the order gap is checked
    if preset == "smoke":
        assert cfg.model.name == "tiny" and len(cells) == 4
    if preset == "controls":  # a real method and its placebo, 3 seeds each: 6 distinct cells
        assert len({c["name"] for c in cells}) == 6
        assert {c["name"] for c in cells} >= {"method=dpo,seed=0", "method=dpo_placebo,seed=2"}
    if preset == "tax_aware":  # plain, two lambdas, placebo; 3 seeds each; likelihood probe only
        assert len({c["name"] for c in cells}) == 12 and list(cfg.probes) == ["likelihood"]
        arms = {}
        for c in cells:
            cell = compose_multirun(c["overrides"])
            arms[c["overrides"][0]] = (cell.method.name, cell.method.get("anchor_per_pair"),
                                       cell.method.module.get("anchor_weight"))  # fmt: skip
        assert arms == {"arm=dpo": ("dpo", 0, None),
                        "arm=anchored_l1": ("dpo_anchored", 1, 1),
                        "arm=anchored_l10": ("dpo_anchored", 1, 10),
                        "arm=dpo_placebo": ("dpo_placebo", 0, None)}  # fmt: skip


def test_a_seed_axis_makes_one_cell_per_seed():
    cfg = compose_multirun(["model=tiny"], ["seed=0,1,2"])
    assert [c["name"] for c in planned_cells(cfg)] == [
        "model=tiny,seed=0", "model=tiny,seed=1", "model=tiny,seed=2",
    ]  # fmt: skip


def test_config_diff_ignores_paths_and_names_changed_keys():
    old = {"paths": {"output_dir": "/a/run"}, "trainer": {"max_steps": 10},
           "callbacks": {"checkpoint": {"dirpath": "/a/run/checkpoints"}}, "ckpt_path": None}  # fmt: skip
    new = {"paths": {"output_dir": "/b/run"}, "trainer": {"max_steps": 20},
           "callbacks": {"checkpoint": {"dirpath": "/b/run/checkpoints"}}, "ckpt_path": "last"}  # fmt: skip
    assert config_diff(old, new) == ["trainer.max_steps: 10 -> 20"]
    assert config_diff(old, old) == []


def test_manifest_updates_from_many_writers_lose_nothing(tmp_path):
    def work(i):
        update_manifest(tmp_path, f"cell{i}", status="running")
        update_manifest(tmp_path, f"cell{i}", status="done", seconds=i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cells = read_manifest(tmp_path)["cells"]
    assert len(cells) == 16 and all(c["status"] == "done" for c in cells.values())
    assert cells["cell7"]["seconds"] == 7


def test_wandb_group_is_the_sweep_in_a_multirun_and_none_otherwise(tmp_path):
    import vat.config  # noqa: F401  (the resolver)

    for mode, expected in (("RUN", None), ("MULTIRUN", "train-mysweep")):
        cfg = compose_multirun(["sweep.name=mysweep"])
        OmegaConf.set_readonly(cfg.hydra, False)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.runtime.output_dir = str(tmp_path)
            cfg.hydra.job.name = "train"
        HydraConfig.instance().set_config(cfg)
        assert cfg.logger.wandb.group == expected
        assert cfg.logger.wandb.job_type == "dpo"


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
    assert table[["gain", "gain_lo", "gain_hi", "nvat_offdiag", "nvat_excess", "nvat_offdiag_null",
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


def _fake_cell(sweep, name, value, method, status="done", kind="prompting", seed=0):
    """A finished cell as train.py writes it, with real metrics on synthetic states."""
    import numpy as np

    from vat import values as V
    from vat.metrics import compute_vat

    d = sweep / name
    d.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"model": {"name": "m"}, "value": {"name": value},
                                     "method": {"name": method}}), d / "config.yaml")  # fmt: skip
    (d / "status.json").write_text(
        json.dumps({"status": status, "error": "boom" * (status == "failed")})
    )
    if status != "done":
        return
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(30, 10))
    results = []
    for k in (2, 4):
        post = pre + 0.05 * k * rng.normal(size=pre.shape)
        post[:, V.BASIC_VALUES.index(value)] += 0.1 * k
        res = compute_vat(
            pre, post, value, V.BASIC_VALUES, n_bootstrap=50, n_permutations=50, seed=0
        )
        results.append({"strength": k, **res.to_dict()})
    (d / "likelihood").mkdir()
    (d / "likelihood" / "vat.json").write_text(
        json.dumps({"probe": "likelihood", "results": results}, allow_nan=False)
    )


def test_report_reads_prompting_cells_and_lists_unfinished_ones(tmp_path):
    from vat.report.sweep import build_sweep_report

    _fake_cell(tmp_path, "value=power", "power", "prompting")
    _fake_cell(tmp_path, "value=security", "security", "prompting", seed=1)
    _fake_cell(tmp_path, "value=tradition", "tradition", "prompting", status="failed")
    update_manifest(tmp_path, "value=hedonism", status="pending", overrides=["value=hedonism"])
    md = build_sweep_report(tmp_path).read_text()
    table = pd.read_csv(tmp_path / "report" / "sweep_table.csv")
    assert list(table["value"]) == ["power", "security"]  # circumplex order
    assert set(table["point"]) == {"k=4"} and (table["gain"] > 0).all()
    unfinished = pd.read_csv(tmp_path / "report" / "unfinished.csv")
    assert dict(zip(unfinished["cell"], unfinished["status"], strict=True)) == {
        "value=hedonism": "pending",
        "value=tradition": "failed",
    }
    assert unfinished.set_index("cell").loc["value=hedonism", "value"] == "hedonism"
    assert "boom" in md and "value=hedonism" in md
    traj = pd.read_csv(tmp_path / "report" / "trajectories.csv")
    assert list(traj[traj["value"] == "power"]["x"]) == [2, 4] and set(traj["axis"]) == {"k"}
    tau = pd.read_csv(tmp_path / "report" / "tax_matrix.csv")
    assert len(tau) == 18 and "power" not in set(tau[tau["target"] == "power"]["of_value"])
    assert (tmp_path / "report" / "tax_matrix_m_prompting_likelihood.png").is_file()
    # each tau carries its cell's Holm-adjusted p (the heatmap's significance marks)
    res = json.loads((tmp_path / "value=power" / "likelihood" / "vat.json").read_text())["results"][
        -1
    ]
    row = tau[(tau["target"] == "power") & (tau["of_value"] == "security")].iloc[0]
    assert row["p_holm"] == pytest.approx(res["p_holm"]["security"])

    # null-corrected nVAT with its interval, each cell's own p, and BH across the sweep's cells
    from vat.metrics import benjamini_hochberg

    cols = ["nvat_excess", "nvat_lo", "nvat_hi", "nvat_offdiag", "nvat_offdiag_null", "p_nvat",
            "p_gain", "gnd_l1_bc", "gnd_l1_null", "p_drift", "p_circumplex"]  # fmt: skip
    assert table[cols].notna().all().all()
    assert ((table["nvat_lo"] <= table["nvat_excess"])
            & (table["nvat_excess"] <= table["nvat_hi"])).all()  # fmt: skip
    for p in ("p_gain", "p_nvat", "p_drift", "p_circumplex"):
        assert np.allclose(table[f"{p}_bh"], benjamini_hochberg(table[p]))
    assert "Benjamini-Hochberg adjusted across the 2 cells of this sweep" in md
    assert "Holm-corrected within that comparison" in md
    assert "nVAT debiased [CI]" in md and "gain p (BH)" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Benjamini-Hochberg" in html and "nVAT debiased [CI]" in html
    assert len(pd.read_parquet(tmp_path / "report" / "sweep_table.parquet")) == 2


def test_report_of_a_missing_dir_names_it(tmp_path):
    from vat.report.sweep import build_sweep_report

    with pytest.raises(FileNotFoundError, match="nope"):
        build_sweep_report(tmp_path / "nope")
