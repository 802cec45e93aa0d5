"""`vat.callbacks.vat`: the VAT curve's rows (what `curve_row` writes, what the loggers get, and
what reads the rows back: the curve figure, the sweep table, resume) and the callback's own rules
(its settings, when it evaluates, the model it scores, where it saves states, a failing logger or
an unwritable curve). Model-free: probes and trainers are stand-ins.

Under DDP against one process: tests/probes/test_distributed.py."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from tests.schwartz import BASIC_VALUES, SCHWARTZ
from vat.callbacks.vat import (
    VATCallback,
    _base_model_view,
    _records_nothing,
    curve_row,
    state_dir,
)
from vat.io import read_curve
from vat.metrics import VATResult, benjamini_hochberg, compute_vat

TARGET = "benevolence"
NEW_KEYS = {
    "nvat_offdiag_excess", "p_nvat", "nvat_offdiag_null", "nvat_lo", "nvat_hi", "p_gain",
    "gnd_l1_bc", "gnd_l1_null", "p_drift", "p_uneven", "circumplex_consistency", "p_circumplex",
}  # fmt: skip


@pytest.fixture(scope="module")
def weak() -> VATResult:
    """A gain whose interval covers 0: GND's interval is open above ("inf" in JSON)."""
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(14, len(BASIC_VALUES)))
    post = pre + rng.normal(scale=0.3, size=pre.shape)
    post[:, BASIC_VALUES.index(TARGET)] += 0.05
    return compute_vat(pre, post, TARGET, SCHWARTZ, n_bootstrap=100, n_permutations=100, seed=0)


@pytest.fixture(scope="module")
def flat() -> VATResult:
    """Post = pre (the curve's step 0): every ratio and every correlation undefined."""
    pre = np.random.default_rng(0).normal(size=(14, len(BASIC_VALUES)))
    return compute_vat(pre, pre.copy(), TARGET, SCHWARTZ, n_bootstrap=50, n_permutations=50, seed=0)


def test_curve_row_is_strict_json_with_the_calibrated_statistics(weak, flat):
    for res in (weak, flat):
        row = curve_row(res, "likelihood", step=3, epoch=0, elapsed=1.23456)
        assert set(row) >= NEW_KEYS
        back = json.loads(json.dumps(row, allow_nan=False))  # no NaN, no inf literals
        assert back == row
    row = curve_row(weak, "likelihood", 3, 0, 0.0)
    assert row["gnd_hi"] == "inf" and row["gnd_lo"] is not None  # open above, as a string
    assert row["nvat_offdiag_excess"] == pytest.approx(weak.nvat_offdiag_excess)
    assert (row["nvat_lo"], row["nvat_hi"]) == pytest.approx(weak.intervals["nvat_offdiag"])
    assert row["p_nvat"] == pytest.approx(weak.p_nvat)
    assert row["p_gain"] == pytest.approx(weak.p_gain)
    step0 = curve_row(flat, "likelihood", 0, 0, 0.0)
    assert step0["gain_too_small"] is True and step0["gnd_l1"] is None


class _Recorder:
    def __init__(self):
        self.logged: list[dict] = []

    def log_metrics(self, metrics, step=None):
        self.logged.append(dict(metrics))


def test_loggers_get_finite_numbers_only(weak, flat):
    cb = VATCallback.__new__(VATCallback)
    cb.log_images = False
    rec = _Recorder()
    trainer = SimpleNamespace(loggers=[rec])
    for res in (weak, flat):
        row = curve_row(res, "lik", 2, 0, 0.5)
        cb._log(trainer, row, res, "lik", 2)
    for logged in rec.logged:
        assert logged, "nothing logged"
        for k, v in logged.items():
            assert isinstance(v, int | float) and math.isfinite(v), (k, v)
    weak_keys = set(rec.logged[0])
    assert "vat/lik/gnd_hi" not in weak_keys  # "inf": skipped, not sent as a string
    assert {"vat/lik/nvat_offdiag_excess", "vat/lik/p_nvat", "vat/lik/p_gain"} <= weak_keys
    assert "vat/lik/gnd_l1" not in rec.logged[1]  # undefined at step 0
    assert not any(k.endswith(("/hubs", "/probe", "/step")) for k in weak_keys)


def test_curve_figure_reads_new_and_old_rows(weak, flat, tmp_path: Path):
    from vat.report import plot_curve

    rows = [curve_row(flat, "lik", 0, 0, 0.0), curve_row(weak, "lik", 5, 0, 0.0)]
    rows = [json.loads(json.dumps(r)) for r in rows]  # as read back from vat_curve.jsonl
    p = plot_curve(rows, tmp_path / "curve.png", probe="lik")
    assert p.read_bytes()[:4] == b"\x89PNG"
    # a curve written before the calibrated statistics: raw numbers only
    old_keys = ("step", "probe", "gain", "gain_lo", "gain_hi", "gnd_l1", "gnd_lo", "gnd_hi",
                "nvat_offdiag", "gain_too_small")  # fmt: skip
    old = [{k: r.get(k) for k in old_keys} for r in rows]
    assert plot_curve(old, tmp_path / "old.png").stat().st_size > 2000


def test_resume_keeps_rows_with_infinite_ends(weak, flat, tmp_path: Path):
    """`_resume_curve` rewrites the kept rows; "inf" survives, later rows go."""
    cb = VATCallback.__new__(VATCallback)
    cb.curve_path = tmp_path / "vat_curve.jsonl"
    rows = [curve_row(r, "lik", s, 0, 0.0) for s, r in ((0, flat), (2, weak), (4, weak))]
    cb.curve_path.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
    cb._resume_curve(2)
    kept, torn = read_curve(cb.curve_path)
    assert torn == 0 and [r["step"] for r in kept] == [0, 2] and kept[1]["gnd_hi"] == "inf"
    assert cb.done == {(0, "lik"), (2, "lik")}


def test_a_torn_last_row_is_dropped_by_the_sweep_report_and_by_resume(weak, flat, tmp_path):
    """A kill in mid-append tears the curve's last line: the sweep report reads the whole rows
    (the same reader as resume), and resume rewrites the curve without the torn one."""
    from vat.results import cell_results

    cb = VATCallback.__new__(VATCallback)
    cb.curve_path = tmp_path / "vat_curve.jsonl"
    rows = [curve_row(flat, "lik", 0, 0, 0.0), curve_row(weak, "lik", 2, 0, 0.0)]
    whole = "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows)
    torn = json.dumps(curve_row(weak, "lik", 4, 0, 0.0))[:40]
    cb.curve_path.write_text(whole + torn)
    (tmp_path / "report_lik").mkdir()
    (tmp_path / "report_lik" / "vat.json").write_text(json.dumps({"probe": "lik", "step": 2}))
    (cell,) = cell_results(tmp_path)
    assert [p["x"] for p in cell["trajectory"]] == [0, 2]
    cb._resume_curve(4)
    assert cb.curve_path.read_text() == whole and cb.done == {(0, "lik"), (2, "lik")}
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []


def test_sweep_rows_from_curve_rows_and_bh(weak, flat):
    from vat.report.sweep_cells import BH_COLUMNS, TABLE_COLUMNS, add_bh, point_row

    row = point_row(json.loads(json.dumps(curve_row(weak, "lik", 2, 0, 0.0))))
    assert row["gnd_hi"] == math.inf and row["nvat_offdiag_excess"] == pytest.approx(
        weak.nvat_offdiag_excess
    )
    full = point_row(weak.to_dict())
    assert full["gnd_hi"] == math.inf and full["p_nvat"] == pytest.approx(weak.p_nvat)
    # a vat.json result from before the calibrated statistics: the new numbers are missing
    old = point_row({"gain": 0.1, "gnd_l1": 0.5, "nvat_offdiag": 0.3,
                      "intervals": {"gain": [0.0, 0.2]}})  # fmt: skip
    assert old["nvat_offdiag_excess"] is None and old["p_gain"] is None and old["gain_lo"] == 0.0

    table = pd.DataFrame([{**r, "cell": f"c{i}"} for i, r in enumerate((row, full, old))])
    table = add_bh(table.reindex(columns=[c for c in TABLE_COLUMNS if not c.endswith("_bh")]))
    for p, bh in BH_COLUMNS.items():
        vals = pd.to_numeric(table[p], errors="coerce").to_numpy(float)
        expect = benjamini_hochberg(vals)
        got = table[bh].to_numpy(float)
        assert np.array_equal(np.isnan(got), np.isnan(vals))  # undefined stays undefined
        assert np.allclose(got[~np.isnan(got)], expect[~np.isnan(expect)])
        assert (got[~np.isnan(got)] >= vals[~np.isnan(vals)] - 1e-12).all()
    assert math.isnan(table.loc[2, "p_gain_bh"])


def test_a_curve_row_torn_by_a_kill_is_dropped_on_resume(tmp_path):
    from vat.callbacks import VATCallback

    cb = VATCallback(probes={"likelihood": None}, heldout=None, target="security",
                     tokenizer=None, model_key={}, out_dir=tmp_path, every_n_steps=2,
                     metrics={}, log_images=False, cache_pre=False, gather_zero3=False)  # fmt: skip
    rows = [{"step": s, "probe": "likelihood", "gain": 0.1 * s} for s in (0, 2, 4)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    cb.curve_path.write_text(text + '{"step": 6, "probe": "likel')  # killed mid-write
    cb._resume_curve(4)
    assert cb.curve_path.read_text() == text
    assert cb.done == {(0, "likelihood"), (2, "likelihood"), (4, "likelihood")}


# ------------------------------------------------------------------ the callback's own rules
def _callback(tmp_path, **settings) -> VATCallback:
    """A callback with every setting given, as conf/callbacks/default.yaml gives them."""
    args = dict(probes={"lik": None}, heldout=None, target="security", tokenizer=None,
                model_key={}, out_dir=tmp_path, every_n_steps=2, metrics={}, log_images=False,
                cache_pre=False, gather_zero3=False)  # fmt: skip
    return VATCallback(**{**args, **settings})


def test_settings_are_checked_when_the_callback_is_built(tmp_path):
    with pytest.raises(ValueError, match=r"callbacks\.vat\.probes is empty"):
        _callback(tmp_path, probes={})
    with pytest.raises(ValueError, match=r"callbacks\.vat\.every_n_steps=0: expected an integer"):
        _callback(tmp_path, every_n_steps=0)
    assert _callback(tmp_path).curve_path == tmp_path / "vat_curve.jsonl"


class _Probe:
    """Scores nothing; remembers whether the model was in training mode when asked."""

    def __init__(self):
        self.training: list[bool] = []

    def score(self, model, tokenizer, heldout):
        self.training.append(model.training)
        return None


def test_evaluates_every_n_steps_and_at_the_end_once_per_step_and_probe(tmp_path):
    """Every 3rd optimizer step and at the end (step 7), each probe once a step, the model scored
    in eval mode and put back in training mode; a second end at the same step scores nothing."""
    a, b = _Probe(), _Probe()
    cb = _callback(tmp_path, probes={"a": a, "b": b}, every_n_steps=3)
    module = SimpleNamespace(model=torch.nn.Linear(2, 2))
    # not rank zero: `_record` only marks a point done (the metrics are rank zero's)
    trainer = SimpleNamespace(global_step=0, is_global_zero=False, strategy=SimpleNamespace())
    for step in range(8):
        trainer.global_step = step
        cb.on_train_batch_end(trainer, module, None, None, step)
    cb.on_train_end(trainer, module)
    cb.on_train_end(trainer, module)
    assert cb.done == {(s, p) for s in (3, 6, 7) for p in ("a", "b")}
    assert a.training == b.training == [False, False, False]
    assert module.model.training


def test_a_point_is_saved_under_its_step_and_probe(tmp_path):
    assert state_dir(tmp_path, 0, "lik") == tmp_path / "states_pre_lik"
    assert state_dir(tmp_path, 12, "lik") == tmp_path / "states" / "step0000012_lik"


def test_only_finite_numbers_are_logged_and_keys_follow_the_declaration():
    from vat.metrics.fields import wandb_metrics

    good = {f"g{i}": v for i, v in enumerate((0, 3, -0.5, 1e300, True))}
    bad = {f"b{i}": v for i, v in enumerate((None, "inf", math.inf, -math.inf, math.nan, [1.0]))}
    row = {"gain": 0.5, "gain_lo": "-inf", "p_gain": math.nan, "hubs": ["a"],
           "shift": {**good, **bad}, "eval_seconds": 1.5, "probe": "lik"}  # fmt: skip
    assert wandb_metrics(row, "lik") == {
        "vat/lik/gain": 0.5, "vat/lik/eval_seconds": 1.5,
        **{f"vat/lik/shift/{k}": v for k, v in good.items()},
    }  # fmt: skip


def test_figures_are_drawn_only_for_a_wandb_logger_that_records():
    assert _records_nothing(SimpleNamespace(_wandb_init={"mode": "disabled"}))
    assert not _records_nothing(SimpleNamespace(_wandb_init={"mode": "offline"}))
    assert not _records_nothing(object())  # not W&B: nothing to ask


class _Adapters:
    """A policy with LoRA adapters that can be switched off."""

    def __init__(self):
        self.events: list[str] = []

    @contextlib.contextmanager
    def disable_adapter(self):
        self.events.append("off")
        yield
        self.events.append("on")


def test_the_base_model_is_the_policy_at_step_0_and_the_policy_without_adapters_later():
    policy = _Adapters()
    module = SimpleNamespace(model=policy)
    with _base_model_view(module, 0) as base:
        assert base is policy and policy.events == []
    with _base_model_view(module, 4) as base:  # after resuming
        assert base is policy and policy.events == ["off"]
    assert policy.events == ["off", "on"]


class _Failing:
    def log_metrics(self, metrics, step=None):
        raise ConnectionError("the logging service went away")


def test_a_failing_logger_is_warned_about_and_the_others_still_get_the_row(weak, tmp_path, caplog):
    cb, rec = _callback(tmp_path), _Recorder()
    trainer = SimpleNamespace(loggers=[_Failing(), rec])
    with caplog.at_level("WARNING", logger="vat.callbacks.vat"):
        cb._log(trainer, curve_row(weak, "lik", 2, 0, 0.5), weak, "lik", 2)
    assert "logger _Failing failed at step 2: the logging service went away" in caplog.text
    assert rec.logged and rec.logged[0]["vat/lik/gain"] == pytest.approx(weak.gain)


def test_a_curve_that_cannot_be_appended_to_names_the_file_and_the_way_back(tmp_path):
    cb = _callback(tmp_path)
    cb.curve_path.mkdir()  # a directory where the curve file should be
    with pytest.raises(OSError, match=r"could not append step 3 to the VAT curve .*vat_curve\.jsonl"
                       r" \(Is a directory\); the last checkpoint is intact"):  # fmt: skip
        cb._append({"step": 3, "probe": "lik"})
