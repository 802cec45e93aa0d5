"""Checkpoints that survive crashes: atomic writes, clear full-disk errors, recovery on resume.

Lightning writes a checkpoint straight to its final name (through an fsspec "transaction" whose
temporary file sits in ``/tmp``, so the final move is a copy when ``/tmp`` is another filesystem):
a job killed mid-write can leave a truncated ``last.ckpt`` that ``ckpt_path=last`` then loads.
Here every checkpoint is written beside its final name as ``.<name>.partial-<pid>``, flushed to
disk, and renamed over the final name (`vat.io.atomic_file`), so a reader sees the old checkpoint
or the new one, never half of one. A full disk raises `CheckpointWriteError`
naming the file and the free space; the partial file is removed and the previous checkpoint is
untouched.

DeepSpeed checkpoints are directories (one shard per rank): `vat.strategies.DeepSpeedStrategy`
writes them under a partial name too and swaps them in; `recover_checkpoints` (run before a
resume) finishes or undoes a swap that a crash interrupted and removes partial leftovers.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from vat.io import PARTIAL, atomic_file

log = logging.getLogger(__name__)

ASIDE = ".previous"  # a directory checkpoint being replaced: ``.last.ckpt.previous``


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full); the previous one is intact."""


def aside_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{ASIDE}")


def write_error(path: Path, e: OSError) -> CheckpointWriteError:
    """`CheckpointWriteError` naming the file, the reason, and the free space where it matters."""
    what = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = shutil.disk_usage(path.parent).free
            what += f" ({free / 2**20:.1f} MiB free on the device of {path.parent})"
        except OSError:
            pass
        what += "; free space or point callbacks.checkpoint.dirpath at a larger disk"
    err = CheckpointWriteError(e.errno, f"could not write checkpoint {path}: {what}. "
                               "The previous checkpoint is intact and resumable (ckpt_path=last)")  # fmt: skip
    return err


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to `path` so that `path` is always either the old file or the whole new one."""
    path = Path(path)
    try:
        with atomic_file(path) as f:
            torch.save(obj, f)
    except OSError as e:
        raise write_error(path, e) from e


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's `TorchCheckpointIO` with atomic, durable writes (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(
                f"{type(self).__name__} takes no storage_options, got {storage_options!r}"
            )
        atomic_torch_save(checkpoint, path)


def recover_checkpoints(ckpt_dir: str | Path) -> list[str]:
    """Clean up after a crash in the middle of writing a checkpoint; returns what it did.

    A partial file or directory is removed (its write never finished). A directory checkpoint set
    aside while its replacement was swapped in is put back if the replacement is missing, else
    removed. Run by rank zero before resuming.
    """
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    done = []
    for p in sorted(d.iterdir()):
        name = p.name
        if name.startswith(".") and PARTIAL in name:
            _remove(p)
            done.append(f"removed unfinished {name}")
        elif name.startswith(".") and name.endswith(ASIDE):
            final = d / name[1 : -len(ASIDE)]
            if final.exists():
                _remove(p)
                done.append(f"removed {name} (replaced by {final.name})")
            else:
                try:
                    os.replace(p, final)
                except FileNotFoundError:  # another process recovered it meanwhile
                    continue
                done.append(f"restored {final.name} (its replacement was never completed)")
    for line in done:
        log.warning("checkpoint recovery in %s: %s", d, line)
    return done


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)
