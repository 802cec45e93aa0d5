"""`vat.launch.sbatch`: the sbatch scripts `render_sbatch` writes, read back and run under a fake
allocation (one or several nodes, GPU or CPU tasks, with or without the walltime guard)."""

import shlex
import subprocess

import pytest

from tests.launch.helpers import run_sbatch_script, sbatch_flags
from vat import launch as VL


def test_sbatch_multinode_script():
    text = VL.render_sbatch(
        ["value=benevolence", "method=dpo", "strategy=deepspeed_zero3"],
        nodes=2, gpus_per_node=8, time="24:00:00", partition="gpu", cpus_per_task=12,
    )  # fmt: skip
    flags = sbatch_flags(text)
    assert flags["nodes"] == "2" and flags["ntasks-per-node"] == "8" and flags["gres"] == "gpu:8"
    assert flags["time"] == "24:00:00" and flags["partition"] == "gpu"
    assert (
        flags["cpus-per-task"] == "12" and "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in text
    )
    # the walltime guard: SIGUSR1 120 s before the limit, the job may be requeued, logs appended
    assert flags["signal"] == "SIGUSR1@120" and flags["requeue"] is True
    assert flags["open-mode"] == "append"
    assert text.startswith("#!/bin/bash\n")
    # the srun line: one python per task, explicit run dir, devices/nodes from the allocation
    srun = text[text.index("srun ") :]
    argv = shlex.split(srun.replace("\\\n", " "))
    assert argv[:4] == ["srun", "--kill-on-bad-exit=1", "$PYTHON", "train.py"]
    assert argv[4:8] == [
        "hydra.run.dir=$RUN_DIR", "trainer.devices=$SLURM_NTASKS_PER_NODE",
        "trainer.num_nodes=$SLURM_NNODES", VL.slurm_plugin_override("SIGUSR1"),
    ]  # fmt: skip
    assert argv[8:] == ["value=benevolence", "method=dpo", "strategy=deepspeed_zero3", "$@"]
    assert 'RUN_DIR="${VAT_RUN_DIR:-outputs/train/slurm/${SLURM_JOB_ID}}"' in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_sbatch_script_runs_srun_with_expanded_arguments(tmp_path):
    """Executed under a fake allocation: the exact argv srun gets, with the per-job run dir."""
    text = VL.render_sbatch(["value=benevolence", "method=dpo"], nodes=2, gpus_per_node=8)
    env = {"SLURM_JOB_ID": "777", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "8"}
    argv = run_sbatch_script(tmp_path, text, ["model=tiny", "x='a b'"], **env)
    assert argv == [
        "--kill-on-bad-exit=1", "python", "train.py", "hydra.run.dir=outputs/train/slurm/777",
        "trainer.devices=8", "trainer.num_nodes=2", VL.slurm_plugin_override(),
        "value=benevolence", "method=dpo", "model=tiny", "x='a b'",
    ]  # fmt: skip
    # VAT_RUN_DIR and PYTHON from the submitting environment win
    argv = run_sbatch_script(
        tmp_path, text, VAT_RUN_DIR="/shared/r1", PYTHON="/venv/bin/python", **env
    )
    assert argv[1] == "/venv/bin/python" and argv[3] == "hydra.run.dir=/shared/r1"


def test_sbatch_one_node_without_walltime_guard():
    text = VL.render_sbatch(
        ["value=security"], nodes=1, gpus_per_node=4, time="02:00:00", signal_lead_s=0
    )
    flags = sbatch_flags(text)
    assert flags["nodes"] == "1" and flags["ntasks-per-node"] == "4" and flags["gres"] == "gpu:4"
    assert "signal" not in flags and "requeue" not in flags and "trainer.plugins" not in text
    with pytest.raises(ValueError, match="nodes=0"):
        VL.render_sbatch(nodes=0)
    with pytest.raises(ValueError, match="double quotes"):
        VL.render_sbatch(run_dir='out/"x"')


def test_cpu_sbatch_script_has_tasks_and_no_gres():
    """--gpus-per-node 0 renders a CPU job (the local SLURM cluster of
    tests/launch/test_local_slurm.py runs it): N tasks per node, no --gres line; one task per GPU
    stays the rule on GPUs."""
    from vat.launch import SbatchJob, render_sbatch

    text = render_sbatch(["strategy=ddp"], gpus_per_node=0, tasks_per_node=2, time="00:10:00")
    assert "#SBATCH --ntasks-per-node=2" in text and "--gres" not in text
    assert "1 node(s) x 2 CPU task(s)" in text
    with pytest.raises(ValueError, match="tasks per node"):
        SbatchJob(nodes=1, gpus_per_node=0, time="1:00:00")
    with pytest.raises(ValueError, match="one task per GPU"):
        SbatchJob(nodes=1, gpus_per_node=8, tasks_per_node=4, time="1:00:00")
    assert "#SBATCH --gres=gpu:8" in SbatchJob(nodes=1, gpus_per_node=8, time="1:00:00").header()
