"""A sweep's files: the manifest of all its cells and each cell's ``status.json``.

``manifest.json`` in the sweep dir lists every cell with its overrides and status (pending,
running, done, failed + the error, interrupted by SIGTERM); ``status.json`` in a cell's dir is the
cell's own record (the latest word on it). Both are written atomically, and the manifest under a
file lock, so cells running as separate SLURM jobs (submitit launcher) can update it at once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from filelock import FileLock

from vat.io import atomic_write

MANIFEST = "manifest.json"
STATUS = "status.json"


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write: a crash leaves the old file or the new one, never half of one."""
    atomic_write(path, json.dumps(obj, indent=2, default=str))


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when there is no such file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def read_manifest(sweep_dir: str | Path) -> dict:
    """``{"cells": {name: {...}}}``; an empty manifest when the sweep has none yet."""
    return read_json(Path(sweep_dir) / MANIFEST) or {"cells": {}}


def update_manifest(sweep_dir: str | Path, cell: str, /, **fields: Any) -> dict:
    """Merge ``fields`` into the manifest entry of ``cell`` (created if missing), under a lock."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(sweep_dir / f".{MANIFEST}.lock")):
        manifest = read_manifest(sweep_dir)
        entry = manifest["cells"].setdefault(cell, {"status": "pending"})
        entry.update(fields)
        manifest["updated"] = now()
        write_json(sweep_dir / MANIFEST, manifest)
    return entry


def now() -> str:
    """The time stamp of the manifest and status files (local time with its UTC offset)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
