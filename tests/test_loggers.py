"""`vat.loggers`: W&B online only with a key and a reachable server, else offline with a `wandb sync`
hint that matches its files; the run id kept in the run dir; `guard` turns a logger's failures into
one warning each. Training through failing loggers end to end:
tests/reliability/test_logging_faults.py (whose `BrokenLogger` is the failing service here too)."""

import pickle
import socket
from pathlib import Path

import pytest

from tests.reliability.test_logging_faults import BrokenLogger
from vat import loggers as VL


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


def test_guard_all_guards_each_logger_of_a_list(caplog):
    a, b = BrokenLogger(fail_after=0), BrokenLogger(fail_after=0)
    assert VL.guard_all([a, b]) == [a, b] and a.vat_guarded and b.vat_guarded
    with caplog.at_level("WARNING", logger="vat.loggers"):
        a.log_metrics({"x": 1.0})
        b.log_metrics({"x": 1.0})
    assert caplog.text.count("logger BrokenLogger: log_metrics failed") == 2


def test_a_logger_that_cannot_be_guarded_is_left_as_it_is(caplog):
    class Slotted:
        __slots__ = ()

        def log_metrics(self, metrics, step=None):
            raise ConnectionError("down")

    lg = Slotted()
    with caplog.at_level("WARNING", logger="vat.loggers"):
        assert VL.guard(lg) is lg
    assert "cannot be guarded" in caplog.text and "its errors stop the run" in caplog.text
    with pytest.raises(ConnectionError):
        lg.log_metrics({})


def test_reachable_asks_the_network_unless_a_proxy_answers_for_it(monkeypatch):
    for key in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
                "all_proxy", "ALL_PROXY"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    asked = []

    def refuse(address, *a, **k):
        asked.append(address)
        raise OSError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert not VL._reachable("https://api.wandb.ai") and asked == [("api.wandb.ai", 443)]
    assert not VL._reachable("http://example.org:8080/x") and asked[-1] == ("example.org", 8080)
    assert not VL._reachable("file:///no/host") and len(asked) == 2  # no host: nothing to ask
    monkeypatch.setenv("https_proxy", "http://proxy.local:3128")  # only the proxy can tell
    assert VL._reachable("https://api.wandb.ai") and len(asked) == 2


def test_a_reused_run_dir_resumes_its_wandb_run(tmp_path, caplog):
    with caplog.at_level("WARNING", logger="vat.loggers"):
        first = VL.wandb_logger(save_dir=str(tmp_path), name="t", mode="offline")
    run_id = (tmp_path / "wandb_id.txt").read_text()
    assert len(run_id) == 8 and int(run_id, 16) >= 0  # 8 hex digits, as W&B run ids go
    assert first._wandb_init["id"] == run_id and first._wandb_init["resume"] == "allow"
    assert f"wandb sync {tmp_path}/wandb/offline-run-*" in caplog.text
    again = VL.wandb_logger(save_dir=str(tmp_path), name="t", mode="offline")
    assert again._wandb_init["id"] == run_id and again._wandb_init["mode"] == "offline"


def test_a_resumed_run_appends_to_its_one_csv_folder(tmp_path):
    """Lightning's CSVLogger started ``version_1`` when a requeued SLURM job resumed (a fixed
    version would delete the first part); `vat.loggers.CSVLogger`, the configs' CSV logger,
    keeps one ``version_0`` and appends, with the earlier columns kept and a new one added."""
    import csv

    for steps, metrics in (
        (range(3), {"train/loss": 0.5}),
        (range(3, 5), {"train/loss": 0.4, "lr": 1.0}),
    ):
        lg = VL.CSVLogger(tmp_path, name="csv", flush_logs_every_n_steps=7)
        assert lg._flush_logs_every_n_steps == 7
        for s in steps:
            lg.log_metrics(metrics, step=s)
        lg.finalize("success")
    assert sorted(p.name for p in (tmp_path / "csv").iterdir()) == ["version_0"]
    rows = list(csv.DictReader((tmp_path / "csv" / "version_0" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3, 4]
    assert [r["lr"] for r in rows] == ["", "", "", "1.0", "1.0"]
    assert VL.CSVLogger(tmp_path, version=3).version == 3  # a chosen version stays


def test_every_shipped_logger_preset_logs_csv_into_one_folder(compose_cfg):
    for preset in ("csv", "wandb", "tensorboard"):
        cfg = compose_cfg("train", [f"logger={preset}"])
        assert cfg.logger.csv._target_ == "vat.loggers.CSVLogger", preset
