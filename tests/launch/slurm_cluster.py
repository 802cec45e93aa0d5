"""A SLURM cluster on localhost for the real-scheduler tests (`launch/local_slurm/cluster.sh`), and
what those tests do with it: render a job script, submit it, wait for it, read its curve.

SLURM is a system package (``apt-get install slurm-wlm munge slurmdbd mariadb-server``): without it
the tests skip, unless ``VAT_REQUIRE_SLURM=1`` (set by ``.ci/run``, which installs it), where they
fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.overrides import FAST

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "launch" / "local_slurm" / "cluster.sh"
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return port if port < 65000 else 16817


def start_cluster(d: Path, nodes: int = 1) -> dict[str, str]:
    """Start a cluster of `nodes` nodes with its state in `d`; returns the environment for its
    clients (``SLURM_CONF`` ...), which `stop_cluster` takes."""
    if any(shutil.which(c) is None for c in ("slurmctld", "munged", "slurmdbd", "mariadbd")):
        msg = "SLURM is not installed (apt-get install slurm-wlm munge slurmdbd mariadb-server)"
        if os.environ.get("VAT_REQUIRE_SLURM") == "1":
            pytest.fail(msg + " but VAT_REQUIRE_SLURM=1")
        pytest.skip(msg + "; CI installs it and sets VAT_REQUIRE_SLURM=1")
    if nodes > 1 and os.geteuid() != 0:
        msg = f"a {nodes}-node local cluster needs root (unshare)"
        if os.environ.get("VAT_REQUIRE_SLURM") == "1":
            pytest.fail(msg + " but VAT_REQUIRE_SLURM=1")
        pytest.skip(msg)
    env = {**os.environ, "VAT_SLURM_DIR": str(d), "VAT_SLURM_PORT": str(_free_port()),
           "NNODES": str(nodes), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # fmt: skip
    p = subprocess.run([str(CLUSTER), "start"], env=env, capture_output=True, text=True,
                       timeout=180)  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    env["SLURM_CONF"] = str(d / "slurm.conf")
    return env


def stop_cluster(env: dict[str, str]) -> None:
    subprocess.run([str(CLUSTER), "stop"], env=env, capture_output=True, timeout=120)


def job(env, job_id: str) -> dict[str, str]:
    """``scontrol show job``: JobState, ExitCode, Restarts, NodeList ..."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True,
                         text=True, timeout=30).stdout  # fmt: skip
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait(env, job_id: str, timeout: float, until=ENDED) -> dict:
    """Poll the job until its state is in `until`; cancel it and fail after `timeout` s."""
    t0 = time.monotonic()
    info: dict = {}
    while time.monotonic() - t0 < timeout:
        info = job(env, job_id)
        if info.get("JobState") in until:
            return info
        time.sleep(2)
    subprocess.run(["scancel", job_id], env=env, timeout=30)
    raise AssertionError(f"job {job_id} still {info.get('JobState')} after {timeout} s: {info}")


def render(path: Path, run_dir: Path, *overrides: str, nodes: int = 1, tasks: int = 2,
           time_limit: str = "00:15:00", signal_lead: int = 120,
           python: str | None = sys.executable) -> Path:  # fmt: skip
    """``python -m vat.launch sbatch`` for a CPU job of `nodes` x `tasks` DDP ranks (gloo) on the
    tiny model, into `path`; ``python=None``: the script's default (``python`` on the PATH)."""
    interpreter = ["--python", python] if python else []
    subprocess.run([sys.executable, "-m", "vat.launch", "sbatch", "--nodes", str(nodes),
                    "--gpus-per-node", "0", "--tasks-per-node", str(tasks), "--time", time_limit,
                    "--signal-lead", str(signal_lead), "--run-dir", str(run_dir), *interpreter,
                    "-o", str(path), "--", *FAST, "trainer.accelerator=cpu", "strategy=ddp",
                    *overrides],
                   cwd=ROOT, check=True, timeout=60)  # fmt: skip
    return path


def sbatch(env, script: Path, out: Path, *args: str) -> str:
    """Submit `script` with `args` (more Hydra overrides) and its output to `out`; the job id."""
    p = subprocess.run(["sbatch", "--parsable", f"--output={out}", str(script), *args], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return p.stdout.strip().split(";")[0]


def curve(run_dir: Path, probe: str | None = "likelihood") -> list[dict]:
    """The rows of ``vat_curve.jsonl`` (of one probe, or all)."""
    rows = [json.loads(x) for x in (run_dir / "vat_curve.jsonl").read_text().splitlines() if x]
    return [r for r in rows if probe is None or r.get("probe") == probe]


def node_processes(env, node: str, needle: str) -> list[int]:
    """PIDs of the processes on `node` (in its slurmd's namespaces) whose command line holds
    `needle`: a job's tasks on that node."""
    slurmd = (Path(env["VAT_SLURM_DIR"]) / f"slurmd-{node}.pid").read_text().strip()
    ns = os.readlink(f"/proc/{slurmd}/ns/uts")
    pids = []
    for p in Path("/proc").iterdir():
        try:
            ours = p.name.isdigit() and os.readlink(p / "ns" / "uts") == ns
            if ours and needle in (p / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(p.name))
        except OSError:  # the process ended meanwhile
            continue
    return pids


def wait_for(predicate, what: str, timeout: float, env=None, job_id: str | None = None) -> None:
    """Poll `predicate` until true; fail after `timeout` s, or when the job ended first."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if predicate():
            return
        if job_id is not None:
            state = job(env, job_id).get("JobState")
            assert state not in ENDED, f"job {job_id} ended ({state}) before {what}"
        time.sleep(1)
    raise AssertionError(f"no {what} within {timeout} s")
