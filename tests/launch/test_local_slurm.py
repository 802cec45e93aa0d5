"""Our SLURM scripts against a real scheduler: a single-host cluster on localhost
(`launch/local_slurm/cluster.sh`: munge, slurmctld, slurmd, slurmdbd on MariaDB for `sacct`; CPU
only) started for this module.

- ``sbatch`` of a rendered ``python -m vat.launch sbatch`` script: ``srun python train.py`` with
  ``strategy=ddp`` over 2 CPU tasks (gloo) on the tiny model; both ranks join, the run dir is the
  one the script promised, the curve and the checkpoints are in it;
- the walltime guard: a job whose time limit is near gets SIGUSR1, saves ``hpc_ckpt_*.ckpt``,
  requeues itself with ``scontrol requeue``, resumes in the same run dir and ends with the curve of
  an uninterrupted run;
- a submitit sweep (``hydra/launcher=slurm_cpu``): one job per cell, all done, and the same command
  again submits nothing;
- ``scancel`` of a running cell: the cell is ``interrupted``, the same command resumes it.

SLURM is a system package (``apt-get install slurm-wlm munge slurmdbd mariadb-server``): without it these tests skip,
unless ``VAT_REQUIRE_SLURM=1`` (set by ``.ci/run``, which installs it), where they fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.launch import slurm_cluster as S
from tests.launch.slurm_cluster import ROOT
from tests.overrides import FAST

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment (``SLURM_CONF`` ...) of a one-node cluster, torn down after the module."""
    env = S.start_cluster(tmp_path_factory.mktemp("slurm"), nodes=1)
    yield env
    S.stop_cluster(env)


def _render(tmp_path: Path, run_dir: Path, *overrides: str, **job_args) -> Path:
    return S.render(tmp_path / "job.sh", run_dir, "batch.micro_size=1", "batch.global_size=2",
                    f"paths.cache_dir={tmp_path / 'cache'}", *overrides, **job_args)  # fmt: skip


def test_sbatch_runs_ddp_over_two_srun_tasks(slurm, tmp_path):
    run_dir = tmp_path / "run"
    script = _render(tmp_path, run_dir, "trainer.max_steps=4", "callbacks.vat.every_n_steps=2")
    log = tmp_path / "slurm.out"
    job = S.sbatch(slurm, script, log)
    info = S.wait(slurm, job, timeout=900)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", text[-4000:]
    assert f"-> {run_dir}" in text  # the run dir the script promised
    assert "MEMBER: 1/2" in text and "MEMBER: 2/2" in text  # both ranks joined one process group
    assert [r["step"] for r in S.curve(run_dir)] == [0, 2, 4]
    assert list((run_dir / "checkpoints").glob("*.ckpt"))
    assert (run_dir / "hf_adapter").is_dir()


def test_walltime_guard_checkpoints_requeues_and_resumes(slurm, tmp_path):
    """A 2-minute job asked for SIGUSR1 60 s before its limit: Lightning saves hpc_ckpt_1.ckpt in
    the run dir and requeues the job (`scontrol requeue`); the requeued job (same id, restart 1,
    given time enough by the test) resumes from it in the same run dir and completes the curve."""
    run_dir = tmp_path / "run"
    steps, every = 1500, 500  # long enough that the signal (60-90 s in) lands during training
    script = _render(tmp_path, run_dir, f"trainer.max_steps={steps}",
                     f"callbacks.vat.every_n_steps={every}", time_limit="00:02:00",
                     signal_lead=60)  # fmt: skip
    log = tmp_path / "slurm.out"
    job = S.sbatch(slurm, script, log)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 600:  # the guard fires, the job goes back to the queue
        info = S.job(slurm, job)
        if int(info.get("Restarts", 0)) >= 1:
            break
        assert info.get("JobState") not in ("COMPLETED", "FAILED", "TIMEOUT", "CANCELLED"), (
            f"the job ended without being requeued ({info.get('JobState')}): "
            + log.read_text()[-4000:]
        )
        time.sleep(2)
    else:
        raise AssertionError(f"no requeue within 600 s: {S.job(slurm, job)}")
    # time enough for the rest (the guard would otherwise fire again, which is fine but slow)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=00:20:00"], env=slurm,
                   check=True, timeout=30)  # fmt: skip
    info = S.wait(slurm, job, timeout=1200)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", text[-4000:]
    assert int(info["Restarts"]) == 1
    assert "(restart 0)" in text and "(restart 1)" in text
    assert list(run_dir.glob("hpc_ckpt_*.ckpt")), "the walltime guard saved no hpc checkpoint"
    # the curve of an uninterrupted run: every checkpoint step once, up to the last
    assert [r["step"] for r in S.curve(run_dir)] == list(range(0, steps + 1, every))


def test_submitit_sweep_submits_one_job_per_cell_and_nothing_when_done(slurm, tmp_path):
    """``python train.py -m value=benevolence,security hydra/launcher=slurm_cpu``: one SLURM job
    per cell (2 DDP tasks each), the manifest ends all done; the same command again launches no
    job (the skip_done sweeper leaves done cells out before submitit sees them)."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "-m", "value=benevolence,security", "hydra/launcher=slurm_cpu",
           *FAST, "trainer.accelerator=cpu", "trainer.devices=2", "strategy=ddp",
           "batch.micro_size=1", "batch.global_size=2", "trainer.max_steps=2",
           "callbacks.vat.every_n_steps=2", f"paths.cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={sweep}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=ROOT, env=slurm, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    manifest = json.loads((sweep / "manifest.json").read_text())["cells"]
    assert sorted(c["status"] for c in manifest.values()) == ["done", "done"]
    jobs = sorted(d.name for d in (sweep / ".submitit").iterdir() if d.is_dir())
    # submitit submits the batch as one job array: one array task (<id>_<k>) per cell
    assert len([j for j in jobs if re.fullmatch(r"\d+_\d+", j)]) == 2, jobs
    for c in manifest.values():
        rows = S.curve(Path(c["dir"]))
        assert [r["step"] for r in rows] == [0, 2]
    p = subprocess.run(cmd, cwd=ROOT, env=slurm, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "2 of 2 cells are done and are not launched again" in p.stdout + p.stderr
    assert sorted(d.name for d in (sweep / ".submitit").iterdir() if d.is_dir()) == jobs


def _cells(sweep: Path) -> dict:
    try:
        return json.loads((sweep / "manifest.json").read_text())["cells"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return {}


def test_scancel_interrupts_the_cell_and_the_same_command_resumes_it(slurm, tmp_path):
    """``scancel`` of a running cell's job: SLURM sends SIGTERM, the cell saves ``last.ckpt`` and is
    ``interrupted`` in the manifest (submitit learns the job's end from ``sacct``: the local cluster
    keeps accounting); the same command then resumes that cell from its checkpoint, in its run dir,
    and ends with the curve of an uninterrupted run."""
    sweep = tmp_path / "sweep"
    steps, every = 1500, 500
    cmd = [sys.executable, "train.py", "-m", "value=benevolence", "hydra/launcher=slurm_cpu",
           *FAST, "trainer.accelerator=cpu", "trainer.devices=2", "strategy=ddp",
           "batch.micro_size=1", "batch.global_size=2", f"trainer.max_steps={steps}",
           f"callbacks.vat.every_n_steps={every}", f"paths.cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={sweep}"]  # fmt: skip
    log = (tmp_path / "sweep1.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=slurm, stdout=log, stderr=subprocess.STDOUT)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:  # training has begun: the step-0 point is written
            cells = _cells(sweep)
            if cells and all((Path(c["dir"]) / "vat_curve.jsonl").exists() for c in cells.values()):
                break
            assert proc.poll() is None, (tmp_path / "sweep1.log").read_text()[-4000:]
            time.sleep(2)
        else:
            raise AssertionError("the cell did not start within 600 s")
        time.sleep(10)  # some steps past 0
        jobs = subprocess.run(["squeue", "-h", "-o", "%i"], env=slurm, capture_output=True,
                              text=True, timeout=30).stdout.split()  # fmt: skip
        assert len(jobs) == 1, jobs
        subprocess.run(["scancel", jobs[0]], env=slurm, check=True, timeout=30)
        proc.wait(timeout=600)  # the launcher sees the job end (sacct) and returns
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    (cell,) = _cells(sweep).values()
    assert cell["status"] == "interrupted", (cell, (tmp_path / "sweep1.log").read_text()[-4000:])
    cell_dir = Path(cell["dir"])
    stopped = json.loads((cell_dir / "summary.json").read_text())["interrupted"]
    assert 0 < stopped["step"] < steps and stopped["checkpoint"], stopped
    assert (cell_dir / "checkpoints" / "last.ckpt").exists()

    p = subprocess.run(cmd, cwd=ROOT, env=slurm, capture_output=True, text=True, timeout=1200)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    (cell,) = _cells(sweep).values()
    assert cell["status"] == "done" and Path(cell["dir"]) == cell_dir, cell
    assert cell["resumed_from"] and cell["resumed_from"].endswith("last.ckpt"), cell
    assert [r["step"] for r in S.curve(cell_dir)] == list(range(0, steps + 1, every))
