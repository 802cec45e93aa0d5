"""Experiment loggers: W&B online when it can be, offline otherwise, never a reason to stop a run.

`guard` makes any Lightning logger's failures non-fatal: the local files (``vat_curve.jsonl``,
the CSV log) are the record of a run, a logging service is a mirror of them. `CSVLogger` keeps a
run's CSV metrics in one folder when the run resumes (a requeued SLURM job, ``ckpt_path=last``).
"""

from __future__ import annotations

import csv
import inspect
import logging
import os
import socket
import uuid
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger as _LightningCSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter as _LightningWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment

from vat.quiet import drop_wandb_anonymous

log = logging.getLogger(__name__)

# What Lightning, `vat.train` and `VATCallback` call on a logger; `guard` wraps each one it has.
LOGGER_METHODS = (
    "log_hyperparams", "log_metrics", "log_graph", "save", "finalize", "after_save_checkpoint",
    "log_image", "log_table", "log_text",
)  # fmt: skip


class _Guarded:
    """One logger method that warns instead of raising (picklable: holds the logger and a name)."""

    def __init__(self, logger, name: str):
        self.logger, self.name = logger, name

    def __call__(self, *args, **kwargs):
        cls = type(self.logger)  # the class's method: the instance's attribute is this guard
        method = inspect.getattr_static(cls, self.name).__get__(self.logger, cls)
        try:
            return method(*args, **kwargs)
        except Exception as e:  # a logging backend failing must not stop training
            failures = self.logger.__dict__.setdefault("vat_failures", {})
            failures[self.name] = failures.get(self.name, 0) + 1
            if failures[self.name] == 1:
                log.warning(
                    "logger %s: %s failed (%s: %s); training goes on, vat_curve.jsonl in the run "
                    "dir keeps every VAT row. Later %s failures of this logger are counted "
                    "silently.",
                    type(self.logger).__name__, self.name, type(e).__name__, e, self.name,
                )  # fmt: skip
            else:
                log.debug(
                    "logger %s: %s failed again: %s", type(self.logger).__name__, self.name, e
                )
            return None


def guard(logger):
    """``logger`` with its logging methods made non-fatal: an exception is caught, warned about
    once per method (then counted in ``logger.vat_failures``) and the call returns None.

    The instance keeps its class (``isinstance`` and ``type(lg).__name__`` checks still hold);
    only its own attributes shadow the class's methods. Guarding twice is a no-op.
    """
    if logger is None or logger is False or getattr(logger, "vat_guarded", False):
        return logger
    try:
        for name in LOGGER_METHODS:
            if callable(getattr(type(logger), name, None)):
                setattr(logger, name, _Guarded(logger, name))
        logger.vat_guarded = True
    except AttributeError as e:  # __slots__ or a read-only attribute: leave it as it is
        log.warning("logger %s cannot be guarded (%s): its errors stop the run", type(logger), e)
    return logger


def guard_all(loggers):
    """`guard` on each logger of a list (``False``/``None``, meaning no logger, pass through)."""
    if not loggers:
        return loggers
    return [guard(lg) for lg in loggers]


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the URL's host opens (assumed yes behind an HTTP(S) proxy,
    which only the proxy can tell)."""
    from urllib.request import getproxies, proxy_bypass

    u = urlparse(url)
    if u.scheme in getproxies() and not proxy_bypass(u.hostname or ""):
        return True
    host, port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
    if not host:
        return False
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def wandb_mode(requested: str | None = None) -> str:
    """``online`` only with an API key (env or ~/.netrc), the W&B server reachable and not forced
    offline; else ``offline``."""
    mode = requested or os.environ.get("WANDB_MODE")
    if mode in ("offline", "disabled"):
        return mode
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    host = urlparse(base).hostname or "api.wandb.ai"
    has_key = has_key or (netrc.is_file() and host in netrc.read_text(errors="ignore"))
    if not has_key:
        return "offline"
    if not _reachable(base):  # a key but no network: W&B would retry for minutes, then fail
        log.warning("W&B: %s is not reachable; logging offline", base)
        return "offline"
    return "online"


def wandb_logger(save_dir: str, project: str = "vat", name: str | None = None, group: str | None = None,
                 job_type: str | None = None, mode: str | None = None, tags: list[str] | None = None,
                 id_file: str = "wandb_id.txt"):  # fmt: skip
    """A Lightning `WandbLogger` that resumes its run (same id) when the run dir is reused.

    Offline (see `wandb_mode`) it writes under ``<save_dir>/wandb/`` and says how to upload later.
    """
    from lightning.pytorch.loggers import WandbLogger

    mode = wandb_mode(mode)
    out = Path(save_dir)
    out.mkdir(parents=True, exist_ok=True)
    idf = out / id_file
    run_id = idf.read_text().strip() if idf.exists() else None
    if run_id is None:
        run_id = uuid.uuid4().hex[:8]  # W&B run ids: 8 lowercase alphanumerics
        idf.write_text(run_id)
    if mode == "offline":
        log.warning(
            "W&B is offline (no API key, no network, or mode offline). Upload later with: "
            "wandb sync %s/wandb/offline-run-*",
            out,
        )
    logger = WandbLogger(
        project=project, name=name, group=group, job_type=job_type, save_dir=str(out), id=run_id,
        resume="allow", mode=mode, tags=tags,
    )  # fmt: skip
    drop_wandb_anonymous([logger])  # before its run starts: W&B warns about the key Lightning sets
    return logger


class _AppendingWriter(_LightningWriter):
    """Lightning's CSV writer, minus one thing: an existing ``metrics.csv`` is appended to (its
    columns kept), where Lightning's deletes it ("Previous log files in this directory will be
    deleted")."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))


class CSVLogger(_LightningCSVLogger):
    """Lightning's `CSVLogger` with one folder per run: ``<save_dir>/<name>/version_0`` unless a
    version is given, and a resumed run appends to its ``metrics.csv``.

    Lightning's picks the next free ``version_<n>`` each time a run starts, so a SLURM job that
    was requeued (or a run resumed with ``ckpt_path=last``) split its metrics into ``version_0``
    and ``version_1`` (seen on the local 2-node cluster); with a fixed version Lightning would
    delete the first part instead. Rows are appended as logged: a step logged before the
    interruption and again after the resume appears twice, in that order.
    """

    def __init__(self, save_dir, name: str | None = "csv", version: int | str | None = 0,
                 prefix: str = "", flush_logs_every_n_steps: int = 100):  # fmt: skip
        super().__init__(save_dir, name=name, version=0 if version is None else version,
                         prefix=prefix, flush_logs_every_n_steps=flush_logs_every_n_steps)  # fmt: skip

    @property
    @rank_zero_experiment
    def experiment(self) -> _AppendingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment
