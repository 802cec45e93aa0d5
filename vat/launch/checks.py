"""The launch guards: refuse, before any work, a multi-GPU setup that would hang, split output dirs
or re-run a sweep (`check_launch` in ``train``; `LaunchCheck` in the process submitting a sweep).

Who starts the ranks decides whether a run works:

- SLURM (`srun`, also under the Hydra submitit launcher) or `torchrun` start one process per GPU;
  Lightning detects them (`SLURMEnvironment`, `TorchElasticEnvironment`) and spawns nothing.
- Otherwise Lightning starts ranks 1..N-1 itself by re-running the command line (DDP, DeepSpeed and
  FSDP use its subprocess launcher). Under a Hydra multirun that command line is the whole sweep,
  so rank 1 would re-run every cell: `check_launch` refuses that setup before any work is done.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from hydra.experimental.callback import Callback

from vat.launch.devices import parse_devices
from vat.launch.slurm import slurm_srun_env, torchelastic_env

_SPAWNING_STRATEGY_WORDS = ("spawn", "fork", "notebook")  # multiprocessing: argv is not re-run
log = logging.getLogger(__name__)


class LaunchError(RuntimeError):
    """A launch setup that would hang, split output dirs or re-run a sweep."""


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


def _devices_and_nodes(trainer: Any) -> tuple[int | None, int]:
    """``trainer.devices`` per node (None: "auto", -1) and ``trainer.num_nodes``."""
    return parse_devices(trainer.get("devices", 1)), int(trainer.get("num_nodes", 1) or 1)


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

    Raises `LaunchError` with the fix (`ValueError` for a ``trainer.devices`` Lightning refuses).
    """
    env = os.environ if env is None else env
    trainer = cfg.trainer
    devices, nodes = _devices_and_nodes(trainer)
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
        log.info(slurm_rank_line(env))
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


def slurm_rank_line(env: Mapping[str, str]) -> str:
    """Where this srun task sits: its rank, host, node and local rank, and the address every rank
    meets at (``MASTER_ADDR``, else the job's first node, as Lightning's ``SLURMEnvironment``
    picks it). One line per rank in the job's output, the first thing to read when a multi-node
    job hangs."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    nodelist = env.get("SLURM_NODELIST") or env.get("SLURM_JOB_NODELIST") or "127.0.0.1"
    address = env.get("MASTER_ADDR") or SLURMEnvironment.resolve_root_node_address(nodelist)
    g = env.get
    return (f"SLURM task {g('SLURM_PROCID')} of {g('SLURM_NTASKS')} on {socket.gethostname()}: "
            f"node {g('SLURM_NODEID')} of {g('SLURM_NNODES')}, local rank {g('SLURM_LOCALID')}; "
            f"rendezvous at {address}")  # fmt: skip


class LaunchCheck(Callback):
    """Hydra callback of the submitit presets: checks, in the submitting process and before any job
    is queued, that the trainer matches the launcher (one task per GPU).

    Hydra turns an exception raised by a callback into a warning and carries on, so a mismatch
    exits (`SystemExit`, status 1) with the message instead.
    """

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        try:
            check_launcher_matches_trainer(config)
        except (LaunchError, ValueError) as e:
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
    devices, nodes = _devices_and_nodes(config.trainer)
    if devices != tasks or nodes != n_nodes:
        raise LaunchError(
            f"hydra/launcher={choice} starts {tasks} task(s) per node on {n_nodes} node(s), one "
            f"per GPU, but trainer.devices={config.trainer.get('devices')} and "
            f"trainer.num_nodes={nodes}. Add: trainer.devices={tasks} trainer.num_nodes={n_nodes}"
        )
