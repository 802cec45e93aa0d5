"""sbatch scripts that run ``srun python train.py`` on N nodes x G GPUs, one task per GPU, with the
walltime guard: `SbatchJob` (what the script asks SLURM for) and `render_sbatch` (the script).

``python -m vat.launch sbatch`` prints them (`vat.launch.cli`); the examples in ``launch/`` are
rendered this way, and their header line says how.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from string import Template
from typing import Any

from vat.launch.slurm import REQUEUE_SIGNAL, slurm_plugin_override

SIGNAL_LEAD_S = 120  # seconds before the time limit at which SLURM sends the walltime signal


@dataclass(frozen=True)
class SbatchJob:
    """An sbatch job: its allocation, the walltime-guard signal and how every rank starts.

    The defaults are those of ``python -m vat.launch sbatch``. ``gpus_per_node=0`` is a CPU job (no
    ``--gres``): ``tasks_per_node`` processes per node, for DDP over gloo
    (``trainer.accelerator=cpu strategy=ddp``), as the local test cluster runs. ``signal_lead_s=0``
    leaves the walltime guard out. ``run_dir`` is expanded by the shell (``${SLURM_JOB_ID}``);
    ``VAT_RUN_DIR`` and ``PYTHON`` in the submitting environment override it and the interpreter.
    ``extra_sbatch``: more flags, each ``"--qos=high"``, ``"qos=high"`` or a whole ``#SBATCH`` line.
    """

    nodes: int = 1
    gpus_per_node: int = 8
    time: str = "24:00:00"  # walltime, HH:MM:SS or D-HH:MM:SS
    tasks_per_node: int | None = None  # default: one per GPU
    job_name: str = "vat"
    partition: str | None = None
    account: str | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # per node, e.g. 0 (all) or 500G
    signal_lead_s: int = SIGNAL_LEAD_S
    requeue_signal: str = REQUEUE_SIGNAL
    run_dir: str = "outputs/train/slurm/${SLURM_JOB_ID}"
    python: str = "python"
    extra_sbatch: Sequence[str] = ()

    def __post_init__(self) -> None:
        for name in ("run_dir", "python"):
            value = getattr(self, name)
            if any(c in value for c in '"`\n'):
                raise ValueError(f"{name}={value!r}: no double quotes, backticks or newlines")
        nodes, gpus, tasks = self.nodes, self.gpus_per_node, self.tasks
        if nodes < 1 or gpus < 0 or tasks < 1:
            raise ValueError(f"nodes={nodes} must be >= 1, gpus_per_node={gpus} >= 0 and "
                             f"tasks per node ({tasks}) >= 1 (a CPU job: set tasks_per_node)")  # fmt: skip
        if gpus and tasks != gpus:
            raise ValueError(f"tasks_per_node={tasks} with gpus_per_node={gpus}: one task "
                             "per GPU (Lightning binds each rank to one device)")  # fmt: skip

    @property
    def tasks(self) -> int:
        """Tasks (ranks) per node: ``tasks_per_node``, else one per GPU."""
        return self.gpus_per_node if self.tasks_per_node is None else self.tasks_per_node

    def header(self) -> list[str]:
        """The ``#SBATCH`` lines: nodes, one task per GPU, GPUs, time and the walltime signal."""
        flags: list[tuple[str, Any]] = [
            ("job-name", self.job_name),
            ("nodes", self.nodes),
            ("ntasks-per-node", self.tasks),
            *([("gres", f"gpu:{self.gpus_per_node}")] if self.gpus_per_node else []),
            ("time", self.time),
        ]
        flags += [(k, v) for k, v in (("cpus-per-task", self.cpus_per_task), ("mem", self.mem),
                                      ("partition", self.partition), ("account", self.account))
                  if v]  # fmt: skip
        if self.signal_lead_s > 0:
            flags += [("signal", f"{self.requeue_signal}@{self.signal_lead_s}"), ("requeue", None)]
        flags += [("open-mode", "append"), ("output", "slurm-%x-%j.out")]
        lines = [f"#SBATCH --{k}" if v is None else f"#SBATCH --{k}={v}" for k, v in flags]
        for flag in self.extra_sbatch:
            flag = flag.strip()
            if not flag.startswith("#SBATCH"):
                flag = f"#SBATCH {flag if flag.startswith('-') else '--' + flag}"
            lines.append(flag)
        return lines


class _ScriptTemplate(Template):
    delimiter = "@@"  # shell scripts are full of `$`


_SBATCH_BODY = _ScriptTemplate("""\

set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-.}"  # the repository root you ran sbatch from
# One run dir per job, shared by every rank and kept when the job is requeued (same job id), so the
# requeued job resumes from the hpc_ckpt_*.ckpt that the walltime guard saved there.
RUN_DIR="${VAT_RUN_DIR:-@@{run_dir}}"
PYTHON="${PYTHON:-@@{python}}"
@@{env_lines}echo "vat: job ${SLURM_JOB_ID} (restart ${SLURM_RESTART_COUNT:-0}): ${SLURM_NNODES} node(s) x ${SLURM_NTASKS_PER_NODE} task(s) -> $RUN_DIR"

# One task per device: Lightning sees SLURM (srun) and starts no processes of its own. devices and
# num_nodes come from the allocation, so `sbatch --nodes=4 <this script>` stays consistent.
srun --kill-on-bad-exit=1 "$PYTHON" train.py \\
  hydra.run.dir="$RUN_DIR" \\
  trainer.devices="$SLURM_NTASKS_PER_NODE" \\
  trainer.num_nodes="$SLURM_NNODES" \\
@@{train_args}  "$@"
""")


def train_args(
    overrides: Sequence[str] = (),
    *,
    signal_lead_s: int = SIGNAL_LEAD_S,
    requeue_signal: str = REQUEUE_SIGNAL,
) -> list[str]:
    """The Hydra overrides an sbatch script gives every rank after ``hydra.run.dir`` and the
    trainer's devices and nodes (read from the allocation): the walltime-guard plugin when the
    script asks SLURM for the signal, then the user's overrides."""
    args = [slurm_plugin_override(requeue_signal)] if signal_lead_s > 0 else []
    return args + list(overrides)


def render_sbatch(
    overrides: Sequence[str] = (),
    *,
    command: str | None = None,
    script_name: str = "<this script>",
    **job: Any,
) -> str:
    """An sbatch script that runs ``srun python train.py`` for the `SbatchJob` of `job` (its
    fields as keywords); arguments after the script name (``sbatch script.sh value=security``) are
    appended as Hydra overrides. `command` and `script_name` go into its header comment."""
    j = SbatchJob(**job)
    what = f"{j.gpus_per_node} GPU(s)" if j.gpus_per_node else f"{j.tasks_per_node} CPU task(s)"
    head = [
        "#!/bin/bash",
        f"# {j.nodes} node(s) x {what}. From the repository root: "
        f"sbatch {script_name} [more Hydra overrides]",
        f"# Rendered by: {command or 'python -m vat.launch sbatch'}",
        *j.header(),
    ]
    env_lines = []
    if j.cpus_per_task:
        # srun does not inherit --cpus-per-task from sbatch (Slurm >= 22.05)
        env_lines += [
            "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK",
            "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK",
        ]
    args = train_args(overrides, signal_lead_s=j.signal_lead_s, requeue_signal=j.requeue_signal)
    body = _SBATCH_BODY.substitute(
        run_dir=j.run_dir,
        python=j.python,
        env_lines="".join(line + "\n" for line in env_lines),
        train_args="".join(f"  {shlex.quote(a)} \\\n" for a in args),
    )
    return "\n".join(head) + "\n" + body
