"""Fault injection for the reliability tests: kill, signal, corrupt or fill the disk at a chosen point.

Run an entry point under faults (a child process, as a real crash would be):

    VAT_FAULT="kill_in_checkpoint_write:3" python -m tests.reliability.faults train.py <overrides>

or install them in-process with `install("nan_loss_at_step:3")`. Faults (``;``-separated):

- ``kill_at_step:N``             SIGKILL in the training step of optimizer step N (between checkpoints)
- ``sigterm_at_step:N``          send ourselves SIGTERM there (the real handler runs)
- ``nan_loss_at_step:N``         the training loss of step N becomes NaN
- ``kill_in_checkpoint_write:N`` SIGKILL half-way through writing the N-th checkpoint file
- ``enospc_in_checkpoint_write:N`` "No space left on device" half-way through the N-th checkpoint
- ``kill_in_scoring:N``          SIGKILL after the N-th forward of the scorer (mid-evaluation)

The patches sit below the code under test (the training step, ``torch.save``, the scorer's forward),
so what is tested is the real behaviour of `vat` around them.
"""

from __future__ import annotations

import errno
import io
import os
import runpy
import signal
import sys

import torch


def _kill() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _patch_step(at: int, action) -> None:
    for cls in _module_classes():
        step = cls._step

        def _step(self, batch, stage, _step=step):
            loss = _step(self, batch, stage)
            if stage == "train" and self.global_step == at:
                loss = action(self, loss)
            return loss

        cls._step = _step


def _module_classes():
    from vat.modules.dpo import DPOModule
    from vat.modules.sft import SFTModule

    return [DPOModule, SFTModule]


def _patch_checkpoint_write(n: int, fail) -> None:
    """The n-th `torch.save` into a partial checkpoint file writes half its bytes, then `fail()`."""
    real = torch.save
    count = {"n": 0}

    def save(obj, f, *args, **kwargs):
        name = getattr(f, "name", str(f))
        if ".partial" not in str(name):
            return real(obj, f, *args, **kwargs)
        count["n"] += 1
        if count["n"] != n:
            return real(obj, f, *args, **kwargs)
        buf = io.BytesIO()
        real(obj, buf, *args, **kwargs)
        data = buf.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        fail()

    torch.save = save


def _enospc() -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _patch_scoring(n: int) -> None:
    from vat.probes.scoring import Scorer

    real = Scorer._run
    count = {"n": 0}

    def run(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == n:
            _kill()
        return out

    Scorer._run = run


def _nan(module, loss):
    return loss * float("nan")


def _sigterm(module, loss):
    os.kill(os.getpid(), signal.SIGTERM)
    return loss


def _killer(module, loss):
    _kill()


FAULTS = {
    "kill_at_step": lambda n: _patch_step(n, _killer),
    "sigterm_at_step": lambda n: _patch_step(n, _sigterm),
    "nan_loss_at_step": lambda n: _patch_step(n, _nan),
    "kill_in_checkpoint_write": lambda n: _patch_checkpoint_write(n, _kill),
    "enospc_in_checkpoint_write": lambda n: _patch_checkpoint_write(n, _enospc),
    "kill_in_scoring": _patch_scoring,
}


def install(spec: str) -> None:
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        kind, _, arg = part.partition(":")
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {sorted(FAULTS)}")
        FAULTS[kind](int(arg))


def main() -> None:
    script, *args = sys.argv[1:]
    install(os.environ.get("VAT_FAULT", ""))
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
