"""Two nodes for real: a 2-node SLURM cluster on localhost (`launch/local_slurm/cluster.sh start
--nodes 2`: n1 and n2, each slurmd with its own hostname and a hosts file that resolves both), and
the scripts a user renders with ``python -m vat.launch sbatch --nodes 2 --tasks-per-node 1
--gpus-per-node 0``: one CPU rank per node, gloo across the nodes.

Every job of the module is submitted at its start and runs while the tests wait (two 2-node jobs
at a time: each node has 2 CPUs); the walltime test comes first because it watches its job from
the start:

- DDP, 2 nodes x 1 task: node ranks 0 and 1 meet at n1 (the first node), one run dir with the
  curve, the CSV log and the checkpoints written once, and the losses, weights and curve of the
  same config on 1 node x 2 tasks (same global batch);
- DeepSpeed ZeRO-2 and ZeRO-3 (the tests' CPU strategy) across the 2 nodes: the DDP losses and
  weights; ZeRO-3 stops after its first epoch and the same script resumes it (``ckpt_path=last``)
  on 2 nodes, ending with DDP's curve and export; no torch deprecation warning per step;
- the walltime guard on 2 nodes: SIGUSR1 before the limit, one ``hpc_ckpt_1.ckpt``, the job
  requeued once and resumed on both nodes; the curve has one row per (step, probe), ``last.ckpt``
  is the newest checkpoint and the CSV metrics of both parts are in one folder;
- ``scancel --signal=TERM`` of a 2-node job: every rank stops cleanly, rank zero saves
  ``last.ckpt`` and the job completes; resumed, then its task on n2 killed: the job ends (srun's
  ``--kill-on-bad-exit``) and leaves nothing torn; the same script resumes it to the full curve;
- a submitit sweep (``hydra/launcher=slurm_cpu hydra.launcher.nodes=2``) whose cells are 2-node
  jobs: all done, and the same command again submits nothing.

The training recipe is `tests/test_train_distributed.py`'s (20 scenes, SGD, 3 steps per epoch on
2 ranks), so that the numbers compare. SLURM missing: skipped, or failed under
``VAT_REQUIRE_SLURM=1`` (CI); more than one node needs root (``unshare``).
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.launch import slurm_cluster as S
from tests.overrides import FAST
from tests.test_train_distributed import (  # noqa: F401  (items: a fixture)
    RUN,
    adapter,
    assert_same_curve,
    assert_same_weights,
    items,
    losses,
)

pytestmark = pytest.mark.slow

DEEPSPEED = ["strategy._target_=tests.distributed.CPUDeepSpeedStrategy",
             "security.allow_targets=[tests.distributed.]"]  # fmt: skip
TIMEOUT = 1200  # s, for any one job to end (they queue behind each other on 2 x 2 CPUs)
LONG_STEPS, LONG_EVERY = 1500, 500  # long enough that the walltime signal (60-90 s in) lands in fit


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    env = S.start_cluster(tmp_path_factory.mktemp("slurm"), nodes=2)
    env["DS_ACCELERATOR"] = "cpu"  # DeepSpeed's CPU accelerator in every task (sbatch exports env)
    yield env
    S.stop_cluster(env)


class Job:
    """A rendered script submitted once: its id, run dir and output file."""

    def __init__(self, env, d: Path, *overrides: str, nodes: int = 2, tasks: int = 1, **job_args):
        d.mkdir(parents=True)
        self.env, self.run_dir, self.log = env, d / "run", d / "slurm.out"
        self.script = S.render(d / "job.sh", self.run_dir, *overrides,
                               f"paths.cache_dir={d / 'cache'}", nodes=nodes, tasks=tasks,
                               **job_args)  # fmt: skip
        self.id = S.sbatch(env, self.script, self.log)

    def wait(self) -> dict:
        info = S.wait(self.env, self.id, timeout=TIMEOUT)
        assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", self.text()[-6000:]
        return info

    def text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture(scope="module")
def jobs(slurm, items, tmp_path_factory) -> dict[str, Job]:  # noqa: F811 (the fixture)
    """Every job of the module, submitted now; each test waits for its own."""
    d = tmp_path_factory.mktemp("jobs")
    run = [*(o for o in RUN if o not in FAST), f"data.source={items}"]  # render adds FAST
    long = ["data=file", f"data.source={items}", "data.test_fraction=0.1", "batch.micro_size=1",
            "batch.global_size=2", f"trainer.max_steps={LONG_STEPS}",
            f"callbacks.vat.every_n_steps={LONG_EVERY}"]  # fmt: skip
    return {  # the walltime job first: its clock starts when it runs
        "walltime": Job(slurm, d / "walltime", *long, time_limit="00:02:00", signal_lead=60),
        "ddp": Job(slurm, d / "ddp", *run),
        "ddp_1node": Job(slurm, d / "ddp_1node", *run, nodes=1, tasks=2),
        "zero2": Job(slurm, d / "zero2", *run, *DEEPSPEED, "strategy=deepspeed_zero2"),
        "zero3": Job(
            slurm, d / "zero3", *run, *DEEPSPEED, "strategy=deepspeed_zero3", "trainer.max_steps=3"
        ),
    }


def rank_lines(text: str) -> list[str]:
    """The line each rank logs at start (`vat.launch.checks.slurm_rank_line`), without its host."""
    return sorted(line[line.index("SLURM task") :] for line in text.splitlines()
                  if "SLURM task" in line)  # fmt: skip


BOTH_NODES = [
    "SLURM task 0 of 2 on n1: node 0 of 2, local rank 0; rendezvous at n1",
    "SLURM task 1 of 2 on n2: node 1 of 2, local rank 0; rendezvous at n1",
]


def test_walltime_on_two_nodes_checkpoints_requeues_and_resumes_once(jobs, slurm):
    """SIGUSR1 60 s before the 2-minute limit reaches the tasks on both nodes: after that step
    every rank saves ``hpc_ckpt_1.ckpt`` and rank zero requeues the job, which runs again on both
    nodes (restart 1) from that checkpoint and completes. One row per (step, probe), ``last.ckpt`` the newest checkpoint (not a
    ``last-v1.ckpt``), the metrics of both parts in one CSV folder."""
    w = jobs["walltime"]
    t0 = time.monotonic()
    while time.monotonic() - t0 < TIMEOUT:  # the guard fires, the job goes back to the queue
        info = S.job(slurm, w.id)
        if int(info.get("Restarts", 0)) >= 1:
            break
        assert info.get("JobState") not in S.ENDED, (
            f"the job ended without being requeued ({info.get('JobState')}): " + w.text()[-4000:]
        )
        time.sleep(2)
    else:
        raise AssertionError(f"no requeue within {TIMEOUT} s: {S.job(slurm, w.id)}")
    # time enough for the rest (the guard would otherwise fire again, which is fine but slow)
    subprocess.run(["scontrol", "update", f"JobId={w.id}", "TimeLimit=00:20:00"], env=slurm,
                   check=True, timeout=30)  # fmt: skip
    info = w.wait()
    text = w.text()
    assert int(info["Restarts"]) == 1
    assert "(restart 0)" in text and "(restart 1)" in text
    first, second = text.split("(restart 1)")
    assert rank_lines(first) == BOTH_NODES and rank_lines(second) == BOTH_NODES
    # every rank got the signal and the checkpoint came between steps (vat.launch.requeue), not
    # from Lightning's handler, which saved mid-collective and hung
    assert first.count("SLURM walltime signal (SIGUSR1)") == 2, first[-4000:]
    assert "Handling auto-requeue signal" not in text
    assert "stopped by SIGUSR1 (walltime) at step" in first  # why the first part ended
    assert [p.name for p in w.run_dir.glob("hpc_ckpt_*.ckpt")] == ["hpc_ckpt_1.ckpt"]
    assert "Restoring states from the checkpoint path at" in second
    keys = [(r["step"], r["probe"]) for r in S.curve(w.run_dir, None)]
    assert len(keys) == len(set(keys)), keys
    assert [s for s, _ in keys] == list(range(0, LONG_STEPS + 1, LONG_EVERY))
    ckpts = [*(w.run_dir / "checkpoints").glob("*.ckpt"), *w.run_dir.glob("hpc_ckpt_*.ckpt")]
    assert not [p for p in ckpts if p.name.startswith("last-")], ckpts
    newest = max(ckpts, key=lambda p: p.stat().st_mtime_ns)
    assert newest.name == "last.ckpt", sorted(p.name for p in ckpts)
    last = torch.load(newest, map_location="cpu", weights_only=False)
    assert last["global_step"] == LONG_STEPS
    assert [p.name for p in (w.run_dir / "csv").iterdir()] == ["version_0"]
    rows = list(csv.DictReader((w.run_dir / "csv" / "version_0" / "metrics.csv").open()))
    hpc = torch.load(w.run_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)
    steps = [int(r["step"]) for r in rows if r.get("train/loss")]
    # rows from before the requeue and after it, in one file
    assert min(steps) < hpc["global_step"] < max(steps), (hpc["global_step"], steps)


def test_ddp_on_two_nodes_matches_one_node(jobs):
    """Node ranks 0/1 from SLURM, MASTER_ADDR the first node, one process group of 2; one run dir
    where rank zero alone wrote the curve, the CSV log and the checkpoints; and the numbers of
    1 node x 2 tasks."""
    ddp, one = jobs["ddp"], jobs["ddp_1node"]
    ddp.wait()
    text = ddp.text()
    assert rank_lines(text) == BOTH_NODES, text[-4000:]
    assert "MEMBER: 1/2" in text and "MEMBER: 2/2" in text
    assert f"-> {ddp.run_dir}" in text  # the run dir the script promised, the only one
    assert [p for p in ddp.run_dir.parent.iterdir() if p.is_dir() and p.name != "cache"] == [
        ddp.run_dir
    ]
    assert [(r["step"], r["probe"]) for r in S.curve(ddp.run_dir, None)] == [
        (s, "likelihood") for s in (0, 3, 4)
    ]  # each evaluation once: rank zero writes the curve
    assert sorted(p.name for p in (ddp.run_dir / "checkpoints").iterdir()) == [
        "config.yaml", "epoch=0-step=3.ckpt", "last.ckpt"]  # fmt: skip
    assert [p.name for p in (ddp.run_dir / "csv").iterdir()] == ["version_0"]
    assert (ddp.run_dir / "hf_adapter").is_dir()

    one.wait()
    assert len(rank_lines(one.text())) == 2
    got, want = losses(ddp.run_dir), losses(one.run_dir)
    assert got.keys() == want.keys() == {0, 1, 2, 3}
    assert got[0] == pytest.approx(math.log(2), abs=1e-5)  # DPO at step 0
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], abs=1e-6)
    assert_same_weights(adapter(ddp.run_dir), adapter(one.run_dir))
    assert_same_curve(ddp.run_dir, one.run_dir)


def test_zero2_on_two_nodes_matches_ddp(jobs):
    z2, ddp = jobs["zero2"], jobs["ddp"]
    z2.wait()
    ddp.wait()
    assert rank_lines(z2.text()) == BOTH_NODES
    got, want = losses(z2.run_dir), losses(ddp.run_dir)
    assert got.keys() == want.keys()
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], abs=1e-5)
    assert_same_weights(adapter(z2.run_dir), adapter(ddp.run_dir))
    assert (z2.run_dir / "checkpoints" / "last.ckpt").is_dir()  # DeepSpeed's sharded checkpoint


def test_zero3_on_two_nodes_resumes_on_two_nodes_and_matches_ddp(jobs, slurm):
    """ZeRO-3 stops after its first epoch (3 steps, checkpoint at 3); the same script with
    ``ckpt_path=last trainer.max_steps=4`` resumes it on 2 nodes for step 4. Losses (one CSV folder for both parts),
    export and curve are DDP's; torch's per-step deprecation warnings are filtered."""
    z3, ddp = jobs["zero3"], jobs["ddp"]
    z3.wait()
    ckpt = z3.run_dir / "checkpoints" / "last.ckpt" / "checkpoint"
    shards = sorted(p.name for p in ckpt.glob("*optim_states.pt"))
    assert len(shards) == 2, shards  # one optimizer shard per rank, one rank per node
    resume = S.sbatch(slurm, z3.script, z3.log, "ckpt_path=last", "trainer.max_steps=4")
    info = S.wait(slurm, resume, timeout=TIMEOUT)
    text = z3.text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", text[-6000:]
    assert "Restoring states from the checkpoint path at" in text
    assert rank_lines(text) == sorted(BOTH_NODES * 2)  # both parts ran on both nodes
    assert "all_gather_into_tensor" not in text and "reduce_scatter_tensor" not in text
    ddp.wait()
    got, want = losses(z3.run_dir), losses(ddp.run_dir)
    assert got.keys() == want.keys() == {0, 1, 2, 3}  # the resumed step 3 in the same CSV file
    assert [got[s] for s in got] == pytest.approx([want[s] for s in got], abs=1e-5)
    assert [p.name for p in (z3.run_dir / "csv").iterdir()] == ["version_0"]
    assert_same_weights(adapter(z3.run_dir), adapter(ddp.run_dir))
    assert_same_curve(z3.run_dir, ddp.run_dir)


def test_term_then_a_dead_node_leave_a_run_that_resumes(slurm, items, tmp_path):  # noqa: F811
    """The script as rendered by default (``PYTHON=python``: the venv's, first on the PATH, as a
    user submits the shipped scripts). ``scancel --signal=TERM`` (every task): each rank stops
    after its step, rank zero saves ``last.ckpt``, the job completes (``summary.json``:
    interrupted). Resumed with ``ckpt_path=last``, then the rank on n2 killed once the next
    checkpoint exists: srun ends the job (``--kill-on-bad-exit``), every checkpoint left loads
    and the curve has no duplicate. The same script resumes it again and completes the curve."""
    steps, every = 600, 200
    venv_on_path = {**slurm, "PATH": f"{Path(sys.executable).parent}:{slurm['PATH']}"}
    f = Job(venv_on_path, tmp_path / "faults", "data=file", f"data.source={items}",
            "data.test_fraction=0.1", "batch.micro_size=1", "batch.global_size=2",
            f"trainer.max_steps={steps}", f"callbacks.vat.every_n_steps={every}",
            python=None)  # fmt: skip
    S.wait_for(lambda: (f.run_dir / "vat_curve.jsonl").exists(), "step-0 evaluation", TIMEOUT,
               slurm, f.id)  # fmt: skip
    subprocess.run(["scancel", "--signal=TERM", f.id], env=slurm, check=True, timeout=30)
    f.wait()  # COMPLETED 0:0: both ranks left cleanly
    text = f.text()
    assert text.count("SIGTERM received") == 2, text[-4000:]
    stopped = json.loads((f.run_dir / "summary.json").read_text())["interrupted"]
    last = f.run_dir / "checkpoints" / "last.ckpt"
    assert stopped["checkpoint"] == str(last) and 0 < stopped["step"] < every, stopped
    assert (
        torch.load(last, map_location="cpu", weights_only=False)["global_step"] == stopped["step"]
    )

    again = S.sbatch(f.env, f.script, f.log, "ckpt_path=last")
    S.wait_for(lambda: list((f.run_dir / "checkpoints").glob(f"*-step={every}.ckpt")),
               f"the step-{every} checkpoint", TIMEOUT, slurm, again)  # fmt: skip
    pids = S.node_processes(slurm, "n2", "train.py")
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    info = S.wait(slurm, again, timeout=TIMEOUT)
    text = f.text().split(f"vat: job {again} ")[-1]
    assert info["JobState"] == "FAILED", (info, text[-4000:])
    assert "n2: task 1: Killed" in text, text[-4000:]
    for ckpt in (f.run_dir / "checkpoints").glob("*.ckpt"):  # nothing torn: every one loads
        torch.load(ckpt, map_location="cpu", weights_only=False)
    keys = [(r["step"], r["probe"]) for r in S.curve(f.run_dir, None)]
    assert len(keys) == len(set(keys)), keys

    third = S.sbatch(f.env, f.script, f.log, "ckpt_path=last")
    info = S.wait(slurm, third, timeout=TIMEOUT)
    text = f.text().split(f"vat: job {third} ")[-1]
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", text[-6000:]
    assert f"Restoring states from the checkpoint path at {last}" in text
    assert [r["step"] for r in S.curve(f.run_dir)] == list(range(0, steps + 1, every))
    assert "interrupted" not in json.loads((f.run_dir / "summary.json").read_text())
    assert not [p.name for p in (f.run_dir / "checkpoints").iterdir() if "partial" in p.name]


def test_submitit_sweep_of_two_node_cells_is_done_and_not_submitted_again(slurm, tmp_path):
    """``python train.py -m value=benevolence,security hydra/launcher=slurm_cpu
    hydra.launcher.nodes=2 hydra.launcher.tasks_per_node=1 trainer.num_nodes=2``: each cell one
    2-node job (submitit starts the function on every task), the manifest all done; the same
    command again launches no job. The bundled data: an override holding a path
    (``data.source=/...``) names its cell with a ``/`` when the name is hashed for length, and the
    manifest then lists every cell twice (found here; `vat.sweep.names.cell_name`)."""
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "train.py", "-m", "value=benevolence,security",
           "hydra/launcher=slurm_cpu", "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=1",
           *FAST, "trainer.accelerator=cpu", "trainer.devices=1", "trainer.num_nodes=2",
           "strategy=ddp", "batch.micro_size=1", "batch.global_size=2", "trainer.max_steps=2",
           "callbacks.vat.every_n_steps=2", f"paths.cache_dir={tmp_path / 'cache'}",
           f"hydra.sweep.dir={sweep}"]  # fmt: skip
    p = subprocess.run(cmd, cwd=S.ROOT, env=slurm, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    cells = json.loads((sweep / "manifest.json").read_text())["cells"]
    assert sorted(c["status"] for c in cells.values()) == ["done", "done"], cells
    for c in cells.values():
        assert [r["step"] for r in S.curve(Path(c["dir"]))] == [0, 2]
    jobs = sorted(d.name for d in (sweep / ".submitit").iterdir() if d.is_dir())
    logs = "".join(f.read_text() for f in (sweep / ".submitit").glob("*/*_log.*"))
    assert rank_lines(logs) == sorted(BOTH_NODES * 2), logs[-4000:]  # 2 cells x 2 nodes
    p = subprocess.run(cmd, cwd=S.ROOT, env=slurm, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "2 of 2 cells are done and are not launched again" in p.stdout + p.stderr
    assert sorted(d.name for d in (sweep / ".submitit").iterdir() if d.is_dir()) == jobs
