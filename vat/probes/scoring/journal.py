"""The scoring journal: scores appended to a file as they are computed, so that an evaluation
killed half-way resumes with bit-identical scores (`journal`, `ScoreJournal`)."""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


class ScoreJournal:
    """Scores as they are computed, appended to a file: an evaluation killed half-way resumes.

    One JSON line per unit of work (a scene's batches, or one batch): the request hashes and their
    scores. Every request is hashed with its tokens and option ids, so an entry is reused only for
    the very same request; the file must belong to one model and one scorer setting (the caller
    keys its name by them). Floats are written with ``repr`` precision, so reused scores are
    bit-identical to freshly computed ones. A torn last line (killed mid-write) is ignored.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, tuple[float, list[float] | None]] = {}
        self.reused = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    e = json.loads(line)
                    opts = e["opt"] or [None] * len(e["h"])
                    for h, lp, o in zip(e["h"], e["lp"], opts, strict=True):
                        self.entries[h] = (lp, o)
                except (ValueError, KeyError, TypeError):
                    continue  # the line a kill cut short

    def get(self, hashes: list[str]):
        if not all(h in self.entries for h in hashes):
            return None
        self.reused += len(hashes)
        return [self.entries[h] for h in hashes]

    def add(self, hashes: list[str], lp: np.ndarray, opt: np.ndarray | None) -> None:
        line = {"h": hashes, "lp": lp.tolist(), "opt": None if opt is None else opt.tolist()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())


_JOURNAL: contextvars.ContextVar[ScoreJournal | None] = contextvars.ContextVar(
    "vat_score_journal", default=None
)


@contextmanager
def journal(path: str | Path | None) -> Iterator[ScoreJournal | None]:
    """Inside this block every `Scorer.score` (in a single process) reads and extends the
    journal at `path`; None turns journaling off."""
    j = ScoreJournal(path) if path is not None else None
    token = _JOURNAL.set(j)
    try:
        yield j
    finally:
        _JOURNAL.reset(token)


def active() -> ScoreJournal | None:
    """The journal of the enclosing `journal` block, if any."""
    return _JOURNAL.get()


def request_hash(full: list[int], ctx_len: int, option_ids) -> str:
    key = (tuple(full), ctx_len, None if option_ids is None else tuple(option_ids))
    return hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()
