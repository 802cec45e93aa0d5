"""`vat.launch.checks`: `check_launch` and `LaunchCheck` refuse a launch that would hang, split its
output dirs or re-run a sweep in every rank (the submitit presets, srun, torchrun, a local
multirun on several devices), before anything is submitted or trained."""

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from tests.launch.helpers import ROOT, fake_bin, sbatch_flags
from vat import launch as VL


# --------------------------------------------------------------------------- submitit presets
@pytest.mark.parametrize(
    ("preset", "nodes"), [("slurm_1node_8gpu", 1), ("slurm_multinode", 2)]
)  # fmt: skip
def test_submitit_presets_compose(hydra_cfg, preset, nodes, tmp_path, monkeypatch):
    cfg = hydra_cfg([f"hydra/launcher={preset}", "value=benevolence"], multirun=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (
        launcher["_target_"]
        == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (
        nodes,
        8,
        8,
    )
    assert launcher["timeout_min"] == 1440 and launcher["signal_delay_s"] == 120
    assert launcher["additional_parameters"] == {"signal": "USR1@120", "requeue": True}
    assert launcher["max_num_timeout"] == 0  # submitit's own requeue is not used
    assert cfg.hydra.callbacks.vat_launch_check._target_ == "vat.launch.LaunchCheck"
    assert cfg.trainer.devices == 1  # the job config is not touched: LaunchCheck demands overrides

    # The sbatch text submitit would submit for one cell, built as the launcher builds it.
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setenv("PATH", f"{fake_bin(tmp_path, 'srun', 'exit 0')}:{os.environ['PATH']}")
    params = {k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder")}
    executor = submitit.AutoExecutor(
        folder=tmp_path / "sub",
        cluster="slurm",
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "u")
    flags = sbatch_flags(text)
    assert flags["nodes"] == str(nodes) and flags["ntasks-per-node"] == "8"
    assert flags["gpus-per-node"] == "8" and flags["time"] == "1440"
    assert flags["signal"] == "USR1@120" and flags["requeue"] is True
    assert text.count("#SBATCH --signal") == 1
    assert "\nsrun " in text  # the tasks are started by srun


def test_launch_check_refuses_a_sweep_whose_trainer_does_not_match(hydra_cfg):
    cfg = hydra_cfg(["hydra/launcher=slurm_multinode"], multirun=True)
    with pytest.raises(SystemExit, match=r"Add: trainer.devices=8 trainer.num_nodes=2"):
        VL.LaunchCheck().on_multirun_start(config=cfg)
    ok = hydra_cfg(["hydra/launcher=slurm_multinode", "trainer.devices=8", "trainer.num_nodes=2"])
    VL.LaunchCheck().on_multirun_start(config=ok)
    bad = hydra_cfg(["hydra/launcher=slurm_1node_8gpu", "trainer.devices=8",
                     "hydra.launcher.gpus_per_node=4"])  # fmt: skip
    with pytest.raises(VL.LaunchError, match="gpus_per_node=4 but tasks_per_node=8"):
        VL.check_launcher_matches_trainer(bad)


@pytest.mark.slow
def test_sweep_preset_refused_before_anything_is_submitted(tmp_path):
    """End to end through train.py: the mismatch stops the multirun before submitit is reached."""
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "value=benevolence,security", "method=dpo",
         "hydra/launcher=slurm_multinode", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Add: trainer.devices=8 trainer.num_nodes=2" in out.stderr
    assert "srun" not in out.stderr  # submitit never ran (it would look for srun)
    assert not (tmp_path / "sweep" / ".submitit").exists()


# --------------------------------------------------------------------------- check_launch
SLURM_1x2 = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
             "SLURM_JOB_NAME": "vat", "SLURM_JOB_ID": "1"}  # fmt: skip
TORCHRUN_2x2 = {"TORCHELASTIC_RUN_ID": "x", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4"}


@pytest.mark.parametrize(
    ("overrides", "multirun", "env", "error"),
    [
        (["trainer.devices=2", "strategy=ddp"], False, {}, None),  # a single run: Lightning spawns
        (["trainer.devices=1"], True, {}, None),  # one device: nothing to spawn
        (["trainer.devices=2", "strategy=ddp"], True, {}, "re-runs the whole sweep"),
        (["trainer.devices=2"], True, {}, "re-runs the whole sweep"),  # strategy=auto -> ddp
        (["trainer.devices=4", "strategy=deepspeed_zero3"], True, {}, "hydra/launcher=slurm_"),
        (["trainer.devices=2", "strategy=ddp", "+strategy.start_method=spawn"], True, {}, None),
        (["trainer.devices=2"], False, SLURM_1x2, None),
        (["trainer.devices=8"], False, SLURM_1x2, r"Add: trainer.devices=2$"),
        (["trainer.devices=2", "trainer.num_nodes=2"], False, SLURM_1x2, "trainer.num_nodes=1"),
        (["trainer.devices=2"], True, SLURM_1x2, "every rank would run every cell"),
        (["trainer.devices=2", "trainer.num_nodes=2"], False, TORCHRUN_2x2, None),
        (["trainer.devices=4"], False, TORCHRUN_2x2, "Add: trainer.devices=2"),
        (["trainer.devices=2"], False, TORCHRUN_2x2, "Set trainer.num_nodes"),
        (["trainer.devices=2"], False, {**SLURM_1x2, "SLURM_JOB_NAME": "interactive"}, None),
    ],
)
def test_check_launch(hydra_cfg, overrides, multirun, env, error):
    cfg = hydra_cfg(overrides, multirun=multirun)
    if error is None:
        VL.check_launch(cfg, env=env)
    else:
        with pytest.raises(VL.LaunchError, match=error):
            VL.check_launch(cfg, env=env)


@pytest.mark.slow
def test_local_sweep_on_several_devices_is_refused_before_training(tmp_path):
    """train.py -m with the basic launcher and 2 devices: the first cell stops with the fix, and
    no rank is ever spawned (no checkpoint, no second copy of the sweep)."""
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "model=tiny", "logger=csv", "value=benevolence,security",
         "trainer.devices=2", "trainer.accelerator=cpu", "strategy=ddp", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0
    assert "re-runs the whole sweep in every extra rank" in out.stdout + out.stderr
    assert not list(sweep.glob("*/checkpoints"))


def test_check_launch_accepts_a_submitit_cell_started_by_srun(hydra_cfg):
    overrides = ["hydra/launcher=slurm_1node_8gpu", "trainer.devices=2"]
    VL.check_launch(hydra_cfg(overrides, multirun=True), env=SLURM_1x2)


def test_check_launch_counts_device_ids(hydra_cfg):
    """trainer.devices="0,1" under a 2-task srun: two devices, as the allocation has."""
    VL.check_launch(hydra_cfg(["trainer.devices='0,1'"]), env=SLURM_1x2)
    with pytest.raises(VL.LaunchError, match=r"Add: trainer\.devices=2$"):
        VL.check_launch(hydra_cfg(["trainer.devices='0,1,2'"]), env=SLURM_1x2)


def test_each_srun_task_logs_where_it_sits_and_where_the_ranks_meet():
    from vat.launch.checks import slurm_rank_line

    env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_NODEID": "1", "SLURM_NNODES": "2",
           "SLURM_LOCALID": "0", "SLURM_JOB_NODELIST": "n[1-2]"}  # fmt: skip
    line = slurm_rank_line(env)
    assert line.startswith("SLURM task 1 of 2 on ") and line.endswith(
        ": node 1 of 2, local rank 0; rendezvous at n1"
    )
    assert slurm_rank_line({**env, "MASTER_ADDR": "head"}).endswith("rendezvous at head")
