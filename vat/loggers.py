"""Experiment loggers: W&B online when it can be, offline otherwise, never a reason to stop a run."""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

log = logging.getLogger(__name__)


def wandb_mode(requested: str | None = None) -> str:
    """``online`` only with an API key (env or ~/.netrc) and not forced offline; else ``offline``."""
    mode = requested or os.environ.get("WANDB_MODE")
    if mode in ("offline", "disabled"):
        return mode
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    has_key = has_key or (netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore"))
    return "online" if has_key else "offline"


def wandb_logger(save_dir: str, project: str = "vat", name: str | None = None, group: str | None = None,
                 job_type: str | None = None, mode: str | None = None, tags: list[str] | None = None,
                 id_file: str = "wandb_id.txt"):  # fmt: skip
    """A Lightning `WandbLogger` that resumes its run (same id) when the run dir is reused."""
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
            "W&B is offline (no API key or WANDB_MODE=offline). Upload later with: "
            "wandb sync %s/wandb/offline-run-*",
            out,
        )
    return WandbLogger(
        project=project, name=name, group=group, job_type=job_type, save_dir=str(out), id=run_id,
        resume="allow", mode=mode, tags=tags,
    )  # fmt: skip
