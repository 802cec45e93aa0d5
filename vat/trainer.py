"""The Lightning pieces of a training run, built from the config: strategy, callbacks, loggers,
the Trainer (with the derived gradient accumulation), and the run's ends (SIGTERM, teardown)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from vat.checkpoint import AtomicCheckpointIO, recover_checkpoints
from vat.launch.devices import device_count
from vat.launch.requeue import WalltimeRequeue
from vat.loggers import guard_all
from vat.metrics import to_jsonable

log = logging.getLogger(__name__)


def build_strategy(cfg: DictConfig):
    """`cfg.strategy` as the Trainer takes it: a name (strategy=auto) or a Strategy object.

    Lightning's DeepSpeedStrategy runs on CUDA GPUs only but says so only once `fit` starts, after
    the data, tokenizer and reference log-probs: check it here, before anything loads. (A subclass
    that replaces that check, such as the tests' CPU variant, is trusted.)
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if "_target_" not in cfg.strategy:
        return cfg.strategy.name
    strategy = instantiate(cfg.strategy, _convert_="all")  # DeepSpeed wants its config as a dict
    cuda_only = type(strategy).setup_environment is DeepSpeedStrategy.setup_environment
    accelerator = str(cfg.trainer.accelerator)
    if cuda_only and accelerator not in ("auto", "gpu", "cuda"):
        problem = f"trainer.accelerator={accelerator}"
    elif cuda_only and not torch.cuda.is_available():
        problem = "no CUDA GPU is visible"
    else:
        return strategy
    raise RuntimeError(
        f"strategy {cfg.strategy._target_} (DeepSpeed) needs CUDA GPUs, but {problem}: "
        "use strategy=ddp or strategy=auto without GPUs"
    )


def world_size(trainer_cfg) -> int:
    """Processes in the job: devices per node x nodes (devices as a count or a list of ids)."""
    purpose = "the gradient accumulation can be derived from batch.global_size"
    return device_count(trainer_cfg.devices, purpose) * int(trainer_cfg.num_nodes)


def accumulation_steps(global_size: int, micro_size: int, world_size: int) -> int:
    """Gradient accumulation so that micro x world x accumulation = global batch (in examples)."""
    per_step = micro_size * world_size
    if micro_size < 1 or global_size < 1 or global_size % per_step:
        raise ValueError(
            f"batch.global_size={global_size} must be a positive multiple of batch.micro_size "
            f"({micro_size}) x world size ({world_size}) = {per_step}"
        )
    return global_size // per_step


def build_trainer(cfg: DictConfig, strategy, callbacks: list) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the strategy, callbacks and (guarded) loggers, the
    accumulation derived from ``batch.global_size``, and atomic checkpoint writes."""
    accumulate = accumulation_steps(
        cfg.batch.global_size, cfg.batch.micro_size, world_size(cfg.trainer)
    )
    # a logger that fails mid-run warns instead of stopping training (the curve is on disk anyway);
    # (conf/logger: vat.loggers.CSVLogger keeps the CSV log in one folder when the run resumes)
    loggers = (
        guard_all([instantiate(lg) for lg in cfg.logger.values() if lg])
        if cfg.get("logger")
        else False
    )
    # use_distributed_sampler=False: EpochShuffleSampler shards itself across ranks (Lightning's
    # wrapper would shuffle again on top, and the ranks would not share one process's batches).
    # WalltimeRequeue: SLURM's walltime signal handled between steps (Lightning's handler
    # checkpoints inside the signal handler, mid-collective: a 2-node job hung there)
    trainer: L.Trainer = instantiate(cfg.trainer, strategy=strategy,
                                     callbacks=[*callbacks, WalltimeRequeue()], logger=loggers,
                                     accumulate_grad_batches=accumulate,
                                     use_distributed_sampler=False)  # fmt: skip
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not DeepSpeed's own files
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def build_callbacks(cfg: DictConfig, vat_callback) -> list:
    """``cfg.callbacks`` in the config's order (the SIGTERM handler first: it is installed before
    the pre scoring), with the VAT callback built by the caller; the checkpoint directory ready,
    a write a crash cut short undone, and the resolved config saved beside the checkpoints."""
    ckpt_dir = Path(cfg.callbacks.checkpoint.dirpath)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if getattr(rank_zero_only, "rank", 0) == 0:  # from the launcher's env: no process group yet
        recover_checkpoints(ckpt_dir)  # a write that a crash cut short: undone, never loaded
    OmegaConf.save(cfg, ckpt_dir / "config.yaml")
    return [vat_callback if k == "vat" else instantiate(c) for k, c in cfg.callbacks.items() if c]


def interrupted(trainer: L.Trainer, out: Path, summary: dict) -> dict:
    """After SIGTERM, or SLURM's walltime signal: the checkpoint `PreemptionCallback` (or
    `WalltimeRequeue`, which also requeued the job) saved, no export, a clean return."""
    from vat.callbacks import PreemptionCallback

    walltime = next((c for c in trainer.callbacks if isinstance(c, WalltimeRequeue)), None)
    if walltime is not None and walltime.saved:
        why, saved, then = f"{walltime.signal.name} (walltime)", walltime.saved, "the requeued job"
    else:
        cb = next((c for c in trainer.callbacks if isinstance(c, PreemptionCallback)), None)
        why, saved, then = "SIGTERM", cb.saved if cb is not None else None, "ckpt_path=last"
    summary["interrupted"] = {"signal": why, "step": trainer.global_step, "checkpoint": saved}
    if trainer.is_global_zero:
        (out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2))
        log.warning("stopped by %s at step %d (checkpoint: %s); %s resumes from it (a sweep: "
                    "re-run the same command)", why, trainer.global_step, saved, then)  # fmt: skip
    return summary


def finish_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def close_process_group() -> None:
    """Tear down the process group Lightning created for this run (a local call, no collective).

    Left to interpreter exit, a gloo group's threads can be destroyed out of order: a rank that
    finished first aborted with "terminate called without an active exception" (seen once in the
    2-process ZeRO-3 test). A later run in the same process (a sweep cell) creates its own group.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
