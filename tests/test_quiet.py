"""`vat.quiet`: the four library messages that do not concern the run go; the rest stay."""

import logging
import warnings

from vat.quiet import drop_wandb_anonymous, quiet_library_noise


def test_only_the_named_messages_are_silenced(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "config.yaml").write_text("a: 1\n")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_noise(ckpt)
        warnings.warn(
            "The `srun` command is available on your system but is not used. HINT", stacklevel=1
        )
        warnings.warn(f"Checkpoint directory {ckpt} exists and is not empty.", stacklevel=1)
        warnings.warn(
            f"Checkpoint directory {tmp_path}/other exists and is not empty.", stacklevel=1
        )
        warnings.warn("something about your data", stacklevel=1)
    assert [str(w.message) for w in seen] == [
        f"Checkpoint directory {tmp_path}/other exists and is not empty.",
        "something about your data",
    ]


def test_srun_hint_kept_inside_a_slurm_job_and_old_checkpoints_still_warned(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "last.ckpt").write_text(
        "x"
    )  # a previous run's checkpoint: the warning is about this run
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_noise(ckpt)
        warnings.warn(
            "The `srun` command is available on your system but is not used.", stacklevel=1
        )
        warnings.warn(f"Checkpoint directory {ckpt} exists and is not empty.", stacklevel=1)
    assert len(seen) == 2


def test_litlogger_tip_dropped_other_info_kept(caplog):
    quiet_library_noise()
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        log.info("💡 Tip: try installing [litlogger](https://pypi.org/project/litlogger/)")
        log.info("GPU available: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]


def test_wandb_anonymous_key_dropped():
    class Fake:
        def __init__(self):
            self._wandb_init = {"project": "vat", "anonymous": None}

    lg = Fake()
    drop_wandb_anonymous([lg, object()])
    assert lg._wandb_init == {"project": "vat"}


def test_library_internal_deprecations_are_silenced_and_others_kept():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_noise()
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated, use ...", stacklevel=1)
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed", stacklevel=1)
        warnings.warn("You defined a `validation_step` but have no `val_dataloader`.", stacklevel=1)
        warnings.warn("`foo` is deprecated", stacklevel=1)
    assert [str(w.message) for w in seen] == ["`foo` is deprecated"]
