"""Logging faults: a logger (W&B or any other) that fails in the middle of a run never stops
training; the local files (``vat_curve.jsonl``, ``csv/``) keep every row. The offline mode (no W&B
key or no network) and `vat.loggers.guard` on their own: tests/test_loggers.py."""

import csv
import json
from pathlib import Path

import pytest
from lightning.pytorch.loggers import Logger

from tests.overrides import FAST


class BrokenLogger(Logger):
    """A logging service that answers the first call of each method, then fails on every call.

    ``record``: a JSON file of the calls so far (the run instantiates this class from its config,
    under a module name that may differ from the test's, so class attributes are no way back).
    """

    def __init__(self, fail_after: int = 1, record: str | None = None):
        super().__init__()
        self.fail_after = fail_after
        self.record = record
        self.calls: dict[str, int] = {}

    def _call(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1
        if self.record:
            Path(self.record).write_text(json.dumps(self.calls))
        if self.calls[what] > self.fail_after:
            raise ConnectionError(f"{what}: the logging service went away")

    @property
    def name(self):
        return "broken"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        self._call("log_hyperparams")

    def log_metrics(self, metrics, step=None):
        self._call("log_metrics")

    def save(self):
        self._call("save")

    def finalize(self, status):
        self._call("finalize")


@pytest.mark.slow
def test_training_survives_failing_loggers_and_keeps_every_row_locally(
    compose_cfg, monkeypatch, tmp_path, caplog
):
    """W&B (offline; its ``run.log`` raises from the second call on) and a logger that fails
    after its first call of each method: training finishes, the curve has steps 0, 2, 4 and the
    CSV logger has every training step."""
    from wandb.sdk import wandb_run

    from vat.train import train

    real_log, wandb_calls = wandb_run.Run.log, []

    def flaky_log(self, *args, **kwargs):
        wandb_calls.append(kwargs.get("step"))
        if len(wandb_calls) > 1:
            raise ConnectionError("wandb: upstream request failed (injected)")
        return real_log(self, *args, **kwargs)

    monkeypatch.setattr(wandb_run.Run, "log", flaky_log)
    record = tmp_path / "broken_calls.json"
    cfg = compose_cfg("train", [
        *FAST, "method=sft", "trainer.max_steps=4", "callbacks.vat.every_n_steps=2",
        "logger=wandb", "logger.wandb.mode=offline",
        "+logger.broken._target_=tests.reliability.test_logging_faults.BrokenLogger",
        f"+logger.broken.record={record}", "security.allow_targets=[tests.]",
    ])  # fmt: skip
    out = Path(cfg.paths.output_dir)
    with caplog.at_level("WARNING", logger="vat.loggers"):
        summary = train(cfg)

    rows = [json.loads(line) for line in (out / "vat_curve.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert summary["final"]["likelihood"]["step"] == 4 and (out / "report.md").is_file()
    metrics = list(csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open()))
    assert sorted({int(r["step"]) for r in metrics if r.get("train/loss")}) == [0, 1, 2, 3]
    assert {int(r["step"]) for r in metrics if r.get("vat/likelihood/gain")} == {0, 2, 4}
    # the faults were injected, hit, and were each reported once
    calls = json.loads(record.read_text())
    assert calls["log_metrics"] > 1 and calls["log_hyperparams"] > 1
    assert len(wandb_calls) > 1
    warned = [r.getMessage() for r in caplog.records if r.name == "vat.loggers"]
    for who, what in [("BrokenLogger", "log_metrics"), ("BrokenLogger", "log_hyperparams"),
                      ("WandbLogger", "log_metrics")]:  # fmt: skip
        assert sum(f"logger {who}: {what} failed" in w for w in warned) == 1, warned
