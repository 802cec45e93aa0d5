"""Where `vat` keeps what it builds once and reuses: local models, pre states, reference log-probs."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


def cache_dir() -> Path:
    """``$VAT_CACHE`` if set, else ``$XDG_CACHE_HOME/vat`` or ``~/.cache/vat``."""
    if os.environ.get("VAT_CACHE"):
        return Path(os.environ["VAT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vat"


@contextlib.contextmanager
def build_once(target: Path) -> Iterator[Path | None]:
    """Build a cache directory at most once, atomically, even with several processes racing.

    Yields ``None`` when `target` already exists (nothing to do); otherwise a fresh temporary
    directory beside it to fill, which is renamed onto `target` only if the block succeeds, so a
    crash never leaves a half-built entry behind. A file lock serialises concurrent builders
    (e.g. the ranks of a distributed job: one builds, the others wait and then read it). Where the
    lock does not hold across machines (some shared filesystems), a second builder's entry is
    dropped in favour of the first one's instead of failing.

    Not `vat.io.atomic_file`, which replaces one file: this builds a directory once and keeps the
    first complete one (a directory cannot be renamed over another, and need not be).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if target.exists():
            yield None
            return
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            yield tmp
            try:
                os.replace(tmp, target)
            except OSError:
                if not target.exists():  # else built meanwhile elsewhere: as good as ours
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
