"""Launching `train.py` on many GPUs and nodes: guards, the SLURM walltime guard, sbatch scripts.

Who starts the ranks decides whether a run works:

- SLURM (`srun`, also under the Hydra submitit launcher) or `torchrun` start one process per GPU;
  Lightning detects them (`SLURMEnvironment`, `TorchElasticEnvironment`) and spawns nothing.
- Otherwise Lightning starts ranks 1..N-1 itself by re-running the command line (DDP, DeepSpeed and
  FSDP use its subprocess launcher). Under a Hydra multirun that command line is the whole sweep,
  so rank 1 would re-run every cell: `check_launch` refuses that setup before any work is done.

Walltime guard: a job that SLURM signals (``#SBATCH --signal=SIGUSR1@120``) 120 s before its time
limit saves ``hpc_ckpt_<n>.ckpt`` in ``trainer.default_root_dir`` (the run dir) and requeues itself
with ``scontrol requeue`` (Lightning's ``SLURMEnvironment(auto_requeue=True)``); the requeued job keeps
its job id, so its run dir is the same and Lightning resumes from that checkpoint.

``python -m vat.launch sbatch --nodes 2 --gpus-per-node 8 --time 24:00:00 -- value=... method=dpo``
prints an sbatch script (the examples in ``launch/`` are rendered this way);
``python -m vat.launch smoke-report <run dir>...`` prints the GPU smoke table (`launch/gpu_smoke.sh`).

This module imports neither torch nor Lightning at import time (the Hydra callback below runs in the
process that submits a sweep, and rendering a script should be instant).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from string import Template
from typing import Any

from hydra.experimental.callback import Callback

# Environment variables that tell a process that something else started the ranks.
_INTERACTIVE_SLURM_JOB_NAMES = ("bash", "interactive")  # Lightning ignores SLURM for these
_SPAWNING_STRATEGY_WORDS = ("spawn", "fork", "notebook")  # multiprocessing: argv is not re-run


class LaunchError(RuntimeError):
    """A launch setup that would hang, split output dirs or re-run a sweep."""


# --------------------------------------------------------------------------- who started the ranks
def slurm_srun_env(env: Mapping[str, str] | None = None) -> bool:
    """True when SLURM started this process as one task of a job step (as Lightning decides)."""
    env = os.environ if env is None else env
    return "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in _INTERACTIVE_SLURM_JOB_NAMES


def torchelastic_env(env: Mapping[str, str] | None = None) -> bool:
    """True when `torchrun` (torch.distributed.run) started this process."""
    env = os.environ if env is None else env
    return "TORCHELASTIC_RUN_ID" in env


def devices_per_node(devices: Any) -> int | None:
    """`trainer.devices` as a count (an int, a digit string or a list of ids); None if unknown
    ("auto", -1), which `vat.train.world_size` rejects anyway."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices if devices >= 0 else None
    if isinstance(devices, str):
        s = devices.strip()
        if s.isdigit():
            return int(s)
        if "," in s:  # "0,1,2": Lightning's list-of-ids string form
            return len([d for d in s.split(",") if d.strip()])
        return None
    try:
        return len(list(devices))
    except TypeError:
        return None


def _strategy_node(cfg: Any) -> Any:
    """The configured strategy: the `strategy` group node (if any), else `trainer.strategy`."""
    node = cfg.get("strategy") if hasattr(cfg, "get") else None
    if node is None:
        trainer = cfg.get("trainer") if hasattr(cfg, "get") else None
        node = trainer.get("strategy") if trainer is not None else None
    return node


def strategy_reruns_command(strategy: Any) -> bool:
    """Would Lightning start the other local ranks by re-running the command line?

    True for DDP, DeepSpeed, FSDP and "auto" with several devices (Lightning's subprocess script
    launcher); False for the spawn/fork variants (`ddp_spawn`, `ddp_fork`, `ddp_notebook`,
    ``start_method: spawn``), which use multiprocessing and never re-run ``sys.argv``.
    """
    if strategy is None:
        return True
    if isinstance(strategy, str):
        text = strategy
    elif hasattr(strategy, "get"):
        keys = ("_target_", "name", "start_method")  # name: conf/strategy/auto.yaml's form
        text = " ".join(str(strategy.get(k) or "") for k in keys)
    else:  # an instantiated Strategy
        text = f"{type(strategy).__name__} {getattr(strategy, '_start_method', '')}"
    return not any(word in text.lower() for word in _SPAWNING_STRATEGY_WORDS)


def _hydra_state() -> tuple[bool, str]:
    """(is this a Hydra multirun job, the launcher's name) when Hydra is initialised."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False, ""
    hc = HydraConfig.get()
    mode = str(hc.get("mode") or "")
    launcher = hc.get("launcher") or {}
    target = str(launcher.get("_target_", "")) if hasattr(launcher, "get") else ""
    choice = (hc.get("runtime") or {}).get("choices", {}).get("hydra/launcher") or target
    return mode.endswith("MULTIRUN"), (f"{choice} ({target})" if target else str(choice))


def check_launch(cfg: Any, env: Mapping[str, str] | None = None) -> None:
    """Refuse launch setups that cannot work, before any data or model is loaded.

    Call it first thing in ``train(cfg)``. It reads ``cfg.trainer.devices``/``num_nodes``, the
    strategy (``cfg.strategy`` or ``cfg.trainer.strategy``), the environment and the Hydra mode:

    - under ``srun``: ``trainer.devices`` must equal ``--ntasks-per-node`` and
      ``trainer.num_nodes`` equal ``--nodes`` (one task per GPU);
    - under ``torchrun``: ``trainer.devices`` must equal ``--nproc_per_node`` and
      devices x num_nodes equal the world size;
    - a Hydra multirun (``-m``) with more than one device must run each cell as its own job whose
      ranks something else starts (``hydra/launcher=slurm_1node_8gpu`` or ``slurm_multinode``).
      With a local launcher Lightning would re-run the command line, the whole sweep, in every
      extra rank; under ``srun``/``torchrun`` without the submitit launcher every rank would run
      every cell of the sweep on its own.

    Raises `LaunchError` with the fix.
    """
    env = os.environ if env is None else env
    trainer = cfg.trainer
    devices = devices_per_node(trainer.get("devices", 1))
    nodes = int(trainer.get("num_nodes", 1) or 1)
    multirun, launcher = _hydra_state()
    slurm = slurm_srun_env(env) and not torchelastic_env(env)  # torchrun inside SLURM: torchrun
    elastic = torchelastic_env(env)

    if slurm:
        tasks = env.get("SLURM_NTASKS_PER_NODE")
        n_nodes = env.get("SLURM_NNODES")
        want = {}
        if tasks is not None and tasks.isdigit() and devices != int(tasks):
            want["trainer.devices"] = int(tasks)
        if n_nodes is not None and n_nodes.isdigit() and nodes != int(n_nodes):
            want["trainer.num_nodes"] = int(n_nodes)
        if want:
            raise LaunchError(
                f"SLURM started {tasks} task(s) per node on {n_nodes} node(s) (one per GPU) but "
                f"trainer.devices={trainer.get('devices')} and trainer.num_nodes={nodes}. Add: "
                + " ".join(f"{k}={v}" for k, v in want.items())
            )
    elif elastic:
        local = env.get("LOCAL_WORLD_SIZE")
        world = env.get("WORLD_SIZE")
        if local is not None and local.isdigit() and devices != int(local):
            raise LaunchError(
                f"torchrun started {local} process(es) per node (--nproc_per_node) but "
                f"trainer.devices={trainer.get('devices')}. Add: trainer.devices={local}"
            )
        if world is not None and world.isdigit() and devices and devices * nodes != int(world):
            raise LaunchError(
                f"torchrun's world size is {world} but trainer.devices x trainer.num_nodes = "
                f"{devices} x {nodes}. Set trainer.num_nodes to torchrun's --nnodes"
            )

    if not multirun or (devices is not None and devices * nodes <= 1):
        return
    if "submitit" in launcher and slurm:
        return  # one SLURM job per cell; srun started this cell's ranks
    if slurm or elastic:
        raise LaunchError(
            f"a Hydra multirun (-m) inside a job that {'srun' if slurm else 'torchrun'} started "
            "with several ranks: every rank would run every cell of the sweep on its own. Submit "
            "the sweep with "
            "`python train.py -m ... hydra/launcher=slurm_multinode` (one SLURM job per cell), or "
            "run one job per cell without -m and with an explicit hydra.run.dir"
        )
    if devices is None or strategy_reruns_command(_strategy_node(cfg)):
        raise LaunchError(
            f"a Hydra multirun (-m) with the local launcher {launcher or '(basic)'} and "
            f"trainer.devices={trainer.get('devices')} x trainer.num_nodes={nodes}: Lightning "
            "would start ranks 1.. by re-running this command line, which re-runs the whole "
            "sweep in every extra rank. Use a launcher that starts each cell's ranks itself: "
            "`hydra/launcher=slurm_1node_8gpu` or `hydra/launcher=slurm_multinode` (one SLURM job "
            "per cell), or run each cell without -m (`launch/torchrun.sh`, an sbatch script from "
            "`python -m vat.launch sbatch`); see README 'Multi-GPU and multi-node'"
        )


class LaunchCheck(Callback):
    """Hydra callback of the submitit presets: checks, in the submitting process and before any job
    is queued, that the trainer matches the launcher (one task per GPU).

    Hydra turns an exception raised by a callback into a warning and carries on, so a mismatch
    exits (`SystemExit`, status 1) with the message instead.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        try:
            check_launcher_matches_trainer(config)
        except LaunchError as e:
            raise SystemExit(f"Error: {e}") from e


def check_launcher_matches_trainer(config: Any) -> None:
    """``trainer.devices == hydra.launcher.tasks_per_node`` and ``trainer.num_nodes ==
    hydra.launcher.nodes`` (and GPUs per node, when set, equal to tasks per node)."""
    launcher = config.hydra.launcher
    tasks = int(launcher.get("tasks_per_node") or 1)
    n_nodes = int(launcher.get("nodes") or 1)
    gpus = launcher.get("gpus_per_node")
    choice = config.hydra.runtime.choices.get("hydra/launcher", "submitit")
    if gpus is not None and int(gpus) != tasks:
        raise LaunchError(
            f"hydra/launcher={choice}: gpus_per_node={gpus} but tasks_per_node={tasks}; Lightning "
            "runs one rank per GPU, so set hydra.launcher.tasks_per_node to the GPUs per node"
        )
    devices = devices_per_node(config.trainer.get("devices", 1))
    nodes = int(config.trainer.get("num_nodes", 1) or 1)
    if devices != tasks or nodes != n_nodes:
        raise LaunchError(
            f"hydra/launcher={choice} starts {tasks} task(s) per node on {n_nodes} node(s), one "
            f"per GPU, but trainer.devices={config.trainer.get('devices')} and "
            f"trainer.num_nodes={nodes}. Add: trainer.devices={tasks} trainer.num_nodes={n_nodes}"
        )


# --------------------------------------------------------------------------- walltime guard
def slurm_environment(auto_requeue: bool = True, requeue_signal: str | int = "SIGUSR1"):
    """Lightning's ``SLURMEnvironment`` from config (``trainer.plugins``): on ``requeue_signal``
    every rank saves ``hpc_ckpt_<n>.ckpt`` into the run dir and rank 0 runs ``scontrol requeue``.

    Only valid in a process that ``srun`` started. Lightning picks the same environment with the
    same defaults by itself under ``srun``; the sbatch scripts name it so that the signal in the
    ``#SBATCH --signal`` line and the handled signal are written in one place.
    """
    import signal

    from lightning.pytorch.plugins.environments import SLURMEnvironment

    if isinstance(requeue_signal, str):
        name = requeue_signal.upper()
        sig = signal.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    else:
        sig = signal.Signals(requeue_signal)
    return SLURMEnvironment(auto_requeue=auto_requeue, requeue_signal=sig)


def walltime_signal_guard(phase: str, requeue_signal: str = "SIGUSR1",
                          env: Mapping[str, str] | None = None) -> bool:  # fmt: skip
    """Handle SLURM's walltime signal outside ``Trainer.fit``, where Lightning's handler is not
    installed and the signal's default action would kill the job.

    ``phase="before"`` (data, reference log-probs, pre scoring): nothing to checkpoint yet, so rank
    0 requeues the job at once (``scontrol requeue``, as Lightning does) and the requeued job starts
    over. ``phase="after"`` (export, final report): training is finished, the signal is logged and
    ignored, so the job completes instead of failing with "User defined signal 1" (seen on the local
    SLURM cluster when the signal came after the last step). ``phase="fit"`` puts the default back
    just before ``Trainer.fit``: Lightning installs its checkpoint-and-requeue handler only where no
    handler is set (``_SignalConnector._has_already_handler``). A signal between that point and
    Lightning's registration (model set-up inside ``fit``) still ends the job. A no-op outside an
    srun task; True when something was installed.
    """
    import logging
    import signal
    import subprocess

    env = os.environ if env is None else env
    if not slurm_srun_env(env):
        return False
    if phase not in ("before", "fit", "after"):
        raise ValueError(f"phase must be 'before', 'fit' or 'after', got {phase!r}")
    sig = getattr(signal, requeue_signal) if isinstance(requeue_signal, str) else requeue_signal
    if phase == "fit":
        signal.signal(sig, signal.SIG_DFL)
        return True
    log = logging.getLogger(__name__)
    job = env.get("SLURM_JOB_ID", "")
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"

    def before(signum, frame):
        log.warning("SLURM walltime signal before training started: nothing to checkpoint yet; "
                    "requeueing job %s", job)  # fmt: skip
        if env.get("SLURM_PROCID", "0") == "0":
            subprocess.call(["scontrol", "requeue", job])

    def after(signum, frame):
        log.warning("SLURM walltime signal after training finished: ignored while the model is "
                    "exported and the report written")  # fmt: skip

    signal.signal(sig, before if phase == "before" else after)
    return True


def slurm_plugin_override(requeue_signal: str = "SIGUSR1") -> str:
    """The Hydra override that sets `slurm_environment` as the trainer's cluster plugin."""
    plugin = f"{{_target_:vat.launch.slurm_environment,requeue_signal:{requeue_signal}}}"
    return f"++trainer.plugins=[{plugin}]"


# --------------------------------------------------------------------------- sbatch scripts
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


def sbatch_header(
    *,
    nodes: int,
    gpus_per_node: int,
    time: str,
    tasks_per_node: int | None = None,
    job_name: str = "vat",
    partition: str | None = None,
    account: str | None = None,
    cpus_per_task: int | None = None,
    mem: str | None = None,
    signal_lead_s: int = 120,
    requeue_signal: str = "SIGUSR1",
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``#SBATCH`` lines: nodes, one task per GPU, GPUs, time and the walltime-guard signal.

    ``gpus_per_node=0`` is a CPU job (no ``--gres``): ``tasks_per_node`` processes per node, for
    DDP over gloo (``trainer.accelerator=cpu strategy=ddp``), as the local test cluster runs."""
    tasks = gpus_per_node if tasks_per_node is None else tasks_per_node
    if nodes < 1 or gpus_per_node < 0 or tasks < 1:
        raise ValueError(f"nodes={nodes} must be >= 1, gpus_per_node={gpus_per_node} >= 0 and "
                         f"tasks per node ({tasks}) >= 1 (a CPU job: set tasks_per_node)")  # fmt: skip
    if gpus_per_node and tasks != gpus_per_node:
        raise ValueError(f"tasks_per_node={tasks} with gpus_per_node={gpus_per_node}: one task "
                         "per GPU (Lightning binds each rank to one device)")  # fmt: skip
    flags: list[tuple[str, Any]] = [
        ("job-name", job_name),
        ("nodes", nodes),
        ("ntasks-per-node", tasks),
        *([("gres", f"gpu:{gpus_per_node}")] if gpus_per_node else []),
        ("time", time),
    ]
    flags += [(k, v) for k, v in (("cpus-per-task", cpus_per_task), ("mem", mem),
                                  ("partition", partition), ("account", account)) if v]  # fmt: skip
    if signal_lead_s > 0:
        flags += [("signal", f"{requeue_signal}@{signal_lead_s}"), ("requeue", None)]
    flags += [("open-mode", "append"), ("output", "slurm-%x-%j.out")]
    lines = [f"#SBATCH --{k}" if v is None else f"#SBATCH --{k}={v}" for k, v in flags]
    for flag in extra:  # "--qos=high", "qos=high" or a whole "#SBATCH --qos=high" line
        flag = flag.strip()
        if not flag.startswith("#SBATCH"):
            flag = f"#SBATCH {flag if flag.startswith('-') else '--' + flag}"
        lines.append(flag)
    return lines


def train_args(
    overrides: Sequence[str] = (), *, signal_lead_s: int = 120, requeue_signal: str = "SIGUSR1"
) -> list[str]:
    """The Hydra overrides an sbatch script gives every rank after ``hydra.run.dir`` and the
    trainer's devices and nodes (read from the allocation): the walltime-guard plugin when the
    script asks SLURM for the signal, then the user's overrides."""
    args = [slurm_plugin_override(requeue_signal)] if signal_lead_s > 0 else []
    return args + list(overrides)


def render_sbatch(
    overrides: Sequence[str] = (),
    *,
    nodes: int = 1,
    gpus_per_node: int = 8,
    time: str = "24:00:00",
    tasks_per_node: int | None = None,
    job_name: str = "vat",
    partition: str | None = None,
    account: str | None = None,
    cpus_per_task: int | None = None,
    mem: str | None = None,
    signal_lead_s: int = 120,
    requeue_signal: str = "SIGUSR1",
    run_dir: str = "outputs/train/slurm/${SLURM_JOB_ID}",
    python: str = "python",
    extra_sbatch: Sequence[str] = (),
    command: str | None = None,
    script_name: str = "<this script>",
) -> str:
    """An sbatch script that runs ``srun python train.py`` on ``nodes`` x ``gpus_per_node`` GPUs.

    ``run_dir`` is expanded by the shell (``${SLURM_JOB_ID}``); ``VAT_RUN_DIR`` and ``PYTHON`` in
    the submitting environment override it and the interpreter; arguments after the script name
    (``sbatch script.sh value=security``) are appended as Hydra overrides.
    """
    for name, value in (("run_dir", run_dir), ("python", python)):
        if any(c in value for c in '"`\n'):
            raise ValueError(f"{name}={value!r}: no double quotes, backticks or newlines")
    head = [
        "#!/bin/bash",
        f"# {nodes} node(s) x "
        + (f"{gpus_per_node} GPU(s)" if gpus_per_node else f"{tasks_per_node} CPU task(s)")
        + f". From the repository root: sbatch {script_name} [more Hydra overrides]",
        f"# Rendered by: {command or 'python -m vat.launch sbatch'}",
        *sbatch_header(
            nodes=nodes, gpus_per_node=gpus_per_node, time=time, tasks_per_node=tasks_per_node,
            job_name=job_name,
            partition=partition, account=account, cpus_per_task=cpus_per_task, mem=mem,
            signal_lead_s=signal_lead_s, requeue_signal=requeue_signal, extra=extra_sbatch,
        ),
    ]  # fmt: skip
    env_lines = []
    if cpus_per_task:
        # srun does not inherit --cpus-per-task from sbatch (Slurm >= 22.05)
        env_lines += [
            "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK",
            "export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK",
        ]
    args = train_args(overrides, signal_lead_s=signal_lead_s, requeue_signal=requeue_signal)
    body = _SBATCH_BODY.substitute(
        run_dir=run_dir,
        python=python,
        env_lines="".join(line + "\n" for line in env_lines),
        train_args="".join(f"  {shlex.quote(a)} \\\n" for a in args),
    )
    return "\n".join(head) + "\n" + body


# --------------------------------------------------------------------------- GPU smoke report
def _floats(rows: list[dict], key: str) -> list[tuple[int, float]]:
    out = []
    for r in rows:
        v = r.get(key)
        if v not in (None, ""):
            out.append((int(float(r.get("step") or 0)), float(v)))
    return out


def smoke_metrics(run_dir: str | Path) -> dict:
    """What `launch/gpu_smoke.sh` prints for one run: step-0 loss, median tokens/s over the steps
    after the first, peak GPU memory (``smoke.json`` from `launch/gpu_smoke.py`) and the final VAT
    gain per probe (``summary.json``)."""
    run_dir = Path(run_dir)
    metrics = sorted(run_dir.glob("csv/version_*/metrics.csv"))
    rows = list(csv.DictReader(metrics[-1].open())) if metrics else []
    losses = _floats(rows, "train/loss")
    # perf/tokens_per_s is per training batch; the first one carries warm-up (and allocation).
    tps = [v for s, v in _floats(rows, "perf/tokens_per_s") if s > 0] or [
        v for _, v in _floats(rows, "perf/tokens_per_s")
    ]
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "step0_loss": losses[0][1] if losses else None,
        "last_loss": losses[-1][1] if losses else None,
        "steps": max((s for s, _ in losses), default=-1) + 1,
        "tokens_per_s": statistics.median(tps) if tps else None,
    }
    smoke = run_dir / "smoke.json"
    if smoke.is_file():
        out.update(json.loads(smoke.read_text()))
    summary = run_dir / "summary.json"
    if summary.is_file():
        final = json.loads(summary.read_text()).get("final", {})
        out["gain"] = {probe: f.get("gain") for probe, f in final.items()}
    return out


def smoke_table(results: Sequence[dict]) -> str:
    def num(v, fmt):
        return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)

    lines = [
        "| run | status | steps | step-0 loss | tokens/s (median) "
        "| peak GPU mem alloc / reserved (GiB) | wall (s) | VAT gain |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gain = ", ".join(f"{k} {num(v, '.3f')}" for k, v in (r.get("gain") or {}).items()) or "-"
        alloc, reserved = r.get("peak_mem_allocated_gib"), r.get("peak_mem_reserved_gib")
        mem = f"{num(alloc, '.2f')} / {num(reserved, '.2f')}"
        lines.append(
            f"| {Path(r['run_dir']).name} | {r.get('status', '?')} | {r['steps']} | "
            f"{num(r['step0_loss'], '.4f')} | {num(r['tokens_per_s'], '.0f')} | {mem} | "
            f"{num(r.get('wall_s'), '.0f')} | {gain} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- CLI
def _sbatch_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m vat.launch sbatch",
        description="Print an sbatch script running `srun python train.py` on N nodes x G GPUs. "
        "Hydra overrides go after `--`.",
    )
    p.add_argument("--nodes", type=int, default=1)
    p.add_argument(
        "--gpus-per-node", type=int, default=8, help="0: a CPU job (see --tasks-per-node)"
    )
    p.add_argument("--tasks-per-node", type=int, help="processes per node (default: one per GPU)")
    p.add_argument("--time", default="24:00:00", help="walltime, HH:MM:SS or D-HH:MM:SS")
    p.add_argument("--job-name", default="vat")
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem", help="per node, e.g. 0 (all) or 500G")
    p.add_argument(
        "--signal-lead",
        type=int,
        default=120,
        help="seconds before the time limit at which to checkpoint and requeue (0: no guard)",
    )
    p.add_argument("--requeue-signal", default="SIGUSR1")
    p.add_argument("--run-dir", default="outputs/train/slurm/${SLURM_JOB_ID}")
    p.add_argument("--python", default="python")
    p.add_argument(
        "--sbatch",
        action="append",
        default=[],
        help="an extra #SBATCH flag (repeatable), e.g. --sbatch qos=high",
    )
    p.add_argument("-o", "--output", help="write the script here instead of stdout")
    if "--" in argv:
        i = argv.index("--")
        argv, overrides = argv[:i], argv[i + 1 :]
    else:
        overrides = []
    a = p.parse_args(argv)
    shown = []  # the command line, without where the script was written
    skip = False
    for arg in argv:
        if skip or arg.startswith("--output="):
            skip = False
            continue
        skip = arg in ("-o", "--output")
        if not skip:
            shown.append(arg)
    command = shlex.join(["python", "-m", "vat.launch", "sbatch", *shown, "--", *overrides])
    text = render_sbatch(
        overrides, nodes=a.nodes, gpus_per_node=a.gpus_per_node, time=a.time,
        tasks_per_node=a.tasks_per_node,
        job_name=a.job_name, partition=a.partition, account=a.account,
        cpus_per_task=a.cpus_per_task, mem=a.mem, signal_lead_s=a.signal_lead,
        requeue_signal=a.requeue_signal, run_dir=a.run_dir, python=a.python,
        extra_sbatch=a.sbatch, command=command, script_name=a.output or "<this script>",
    )  # fmt: skip
    if a.output:
        Path(a.output).write_text(text)
        Path(a.output).chmod(0o755)
    else:
        sys.stdout.write(text)
    return 0


def _smoke_report_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m vat.launch smoke-report")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    results = [smoke_metrics(d) for d in a.run_dirs]
    print(smoke_table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"sbatch": _sbatch_cli, "smoke-report": _smoke_report_cli}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m vat.launch {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
