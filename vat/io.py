"""Run files that survive a crash: atomic writes, and the append-only VAT curve read back.

`atomic_file` / `atomic_write`: the file is written beside its final name as
``.<name>.partial-<pid>``, flushed and fsynced, renamed over the final name (``os.replace``: atomic
on one filesystem) and the rename made durable, so a reader, or a resume after a kill, sees the old
file or the whole new one, never half of one. On any failure the partial file is removed and the
old file is untouched. (Checkpoints, the sweep manifest and status files, the cut-back VAT curve.)
Ours rather than a library's (``atomicwrites`` is archived by its author; Lightning's fsspec
"transaction" writes into ``/tmp`` and copies across filesystems): the partial name is what
`vat.checkpoint.recover_checkpoints` removes after a crash, and the crash tests' fault injection
(``tests/reliability/faults.py``) recognises; its pid keeps two processes writing one file (cells
updating the sweep manifest) from sharing a partial file.

`read_curve`: ``vat_curve.jsonl`` is only ever appended to, one synced line per row, so a kill can
tear its last line only; the reader drops a torn line and says so.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PARTIAL = ".partial"  # hidden partial names: ``.last.ckpt.partial-123`` (never matched as "last")
CURVE_FILE = "vat_curve.jsonl"  # the VAT curve, in the run directory


def partial_path(path: Path, tag: str | int | None = None) -> Path:
    """Where `path` is written until it is whole: ``.<name>.partial[-<tag>]`` beside it."""
    return path.with_name(f".{path.name}{PARTIAL}" + (f"-{tag}" if tag is not None else ""))


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A binary file to write `path` through (for writers that take one, like ``torch.save``):
    `path` becomes the whole new content when the block ends, and stays as it was if it raises.

    The parent directory is created. Errors (e.g. a full disk) propagate unchanged, after the
    partial file is removed; the caller names the file in its own words.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # a KeyboardInterrupt too: no partial file left behind
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` atomically and durably (see `atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def fsync_dir(d: Path) -> None:
    """Make a rename durable (POSIX: the directory entry is flushed with the directory)."""
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return  # e.g. Windows: directories cannot be opened; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_curve(path: Path) -> tuple[list[dict], int]:
    """The rows of a ``vat_curve.jsonl`` and the number of torn lines (a kill in mid-write)."""
    rows, torn = [], 0
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn += 1
            log.warning("%s:%d: an incomplete row (the run was killed while writing it): "
                        "dropped (a resumed run evaluates that step again)", path, n)  # fmt: skip
    return rows, torn
