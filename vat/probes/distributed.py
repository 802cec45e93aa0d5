"""Scoring across the ranks of a distributed job (Lightning DDP or DeepSpeed, torchrun).

The `Scorer` splits its work into units (one scene's cached prefix and its batches, or one batch
of loose requests), gives each rank a share of whole units, and gathers the scores back into the
original request order on every rank. Every rank therefore holds the same, full `ProbeResult`,
equal to the single-process one. Ranks run the same number of forward passes (the shorter shares
are padded with one-token dummy forwards): under DeepSpeed ZeRO-3 every forward gathers parameters
collectively, and a rank that stops early would leave the others waiting forever.

Everything here is a no-op in a single process (no initialised process group, or a world of one).
Scoring that only some ranks do (e.g. rank zero alone) must run inside `local_only()`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist

_state = threading.local()


def rank_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_rank_zero() -> bool:
    return rank_world()[0] == 0


def sharding() -> bool:
    """Whether scoring is split across ranks here: a process group of several, not `local_only`."""
    return rank_world()[1] > 1 and not getattr(_state, "local", False)


@contextlib.contextmanager
def local_only() -> Iterator[None]:
    """Score in this process alone, even inside a distributed job (no collectives)."""
    prev = getattr(_state, "local", False)
    _state.local = True
    try:
        yield
    finally:
        _state.local = prev


def assign(costs: Sequence[float], world: int) -> list[int]:
    """The rank of each work unit: costliest first, each to the least-loaded rank.

    Deterministic (ties go to the lower index and rank), so every rank computes the same
    assignment from the same units without talking to the others.
    """
    owner = [0] * len(costs)
    load = [0.0] * world
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += costs[i]
    return owner


def gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (``[obj]`` in a single process)."""
    _, world = rank_world()
    if world == 1:
        return [obj]
    out: list[Any] = [None] * world
    dist.all_gather_object(out, obj)
    return out


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank (`obj` itself in a single process)."""
    if rank_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def local_device() -> torch.device:
    """This process's accelerator: ``cuda:$LOCAL_RANK`` when CUDA is available, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


@contextlib.contextmanager
def process_group_from_env() -> Iterator[None]:
    """Join the job's process group when launched by torchrun or srun (``WORLD_SIZE > 1``).

    NCCL when CUDA is available (one GPU per local rank), gloo on the CPU. Reads the usual
    ``env://`` variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE). Does nothing in a single
    process or when a group already exists; tears down only the group it created.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_device())
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()
