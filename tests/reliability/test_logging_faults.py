"""Logging faults: no W&B key or no network means offline with a `wandb sync` hint, and a logger
(W&B or any other) that fails in the middle of a run never stops training; the local files
(``vat_curve.jsonl``, ``csv/``) keep every row."""

import csv
import json
import pickle
import socket
from pathlib import Path

import pytest
from lightning.pytorch.loggers import Logger

from tests.overrides import FAST
from vat import loggers as VL


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


def _no_wandb_credentials(monkeypatch, home: Path) -> None:
    for key in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(home))  # no ~/.netrc with a W&B key


def _no_network(monkeypatch) -> list:
    attempts = []

    def refuse(address, *a, **k):
        attempts.append(address)
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


# ------------------------------------------------------------------ offline mode
def test_no_key_means_offline_without_touching_the_network(monkeypatch, tmp_path):
    _no_wandb_credentials(monkeypatch, tmp_path)
    attempts = _no_network(monkeypatch)
    assert VL.wandb_mode() == "offline"
    assert attempts == []  # no key: nothing to try


def test_a_key_but_no_network_means_offline(monkeypatch, tmp_path, caplog):
    _no_wandb_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("WANDB_API_KEY", "vat-fake-secret-0123456789abcdef")
    attempts = _no_network(monkeypatch)
    with caplog.at_level("WARNING", logger="vat.loggers"):
        assert VL.wandb_mode() == "offline"
    assert attempts == [("api.wandb.ai", 443)] and "not reachable" in caplog.text
    assert "vat-fake-secret" not in caplog.text


def test_a_key_and_a_network_mean_online(monkeypatch, tmp_path):
    _no_wandb_credentials(monkeypatch, tmp_path)

    class Conn:
        def close(self):
            pass

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Conn())
    assert VL.wandb_mode() == "offline"  # still no key
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password x\n")
    assert VL.wandb_mode() == "online"  # the key `wandb login` writes
    assert VL.wandb_mode("offline") == "offline"  # logger.wandb.mode=offline wins
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert VL.wandb_mode() == "disabled"


@pytest.mark.slow
def test_offline_logger_prints_a_sync_hint_that_matches_its_files(monkeypatch, tmp_path, caplog):
    """No key, no network: the logger still logs, offline, where the printed command looks."""
    _no_wandb_credentials(monkeypatch, tmp_path / "home")
    _no_network(monkeypatch)
    out = tmp_path / "run"
    with caplog.at_level("WARNING", logger="vat.loggers"):
        lg = VL.wandb_logger(save_dir=str(out), name="t")
    hint = next(r.getMessage() for r in caplog.records if "wandb sync" in r.getMessage())
    pattern = hint.split("wandb sync ", 1)[1].strip()
    assert pattern == f"{out}/wandb/offline-run-*"
    try:
        lg.log_metrics({"x": 1.0}, step=0)
    finally:
        lg.experiment.finish()
    runs = list(out.glob("wandb/offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), runs


# ------------------------------------------------------------------ the guard
def test_guard_turns_each_failure_into_one_warning(caplog):
    lg = VL.guard(BrokenLogger(fail_after=0))
    assert VL.guard(lg) is lg and isinstance(lg, BrokenLogger)
    assert type(lg).__name__ == "BrokenLogger"  # VATCallback picks W&B loggers by class name
    with caplog.at_level("WARNING", logger="vat.loggers"):
        for step in range(3):
            assert lg.log_metrics({"x": 1.0}, step=step) is None
        lg.log_hyperparams({"a": 1})
        lg.save()
        lg.finalize("success")
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 4 and sum("log_metrics failed" in w for w in warned) == 1
    assert "ConnectionError" in warned[0] and "vat_curve.jsonl" in warned[0]
    assert lg.vat_failures == {"log_metrics": 3, "log_hyperparams": 1, "save": 1, "finalize": 1}
    # a guarded logger still pickles (spawned processes, deepcopy) and stays guarded
    again = pickle.loads(pickle.dumps(lg))
    assert again.log_metrics({"x": 1.0}) is None and again.vat_failures["log_metrics"] == 4


def test_guard_passes_results_and_no_logger_through():
    class Fine(BrokenLogger):
        def log_metrics(self, metrics, step=None):
            return "ok"

    assert VL.guard(Fine()).log_metrics({}) == "ok"
    assert VL.guard_all(False) is False and VL.guard_all(None) is None


# ------------------------------------------------------------------ a run whose loggers fail
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
