"""`vat.checkpoint`: a checkpoint is written atomically (the old file or the whole new one, never
half), a failed write names the file, the reason and the free space, and `recover_checkpoints`
cleans up after a crash in mid-write. Killed and full-disk training runs end to end:
tests/reliability/test_crashes.py."""

import errno
import os
import shutil
from collections import namedtuple

import pytest
import torch

from vat.checkpoint import (
    AtomicCheckpointIO,
    CheckpointWriteError,
    aside_path,
    recover_checkpoints,
    write_error,
)

INTACT = "The previous checkpoint is intact and resumable (ckpt_path=last)"


def test_atomic_save_keeps_the_previous_file_on_any_failure(tmp_path, monkeypatch):
    from tests.reliability import faults
    from vat.checkpoint import CheckpointWriteError, atomic_torch_save

    path = tmp_path / "last.ckpt"
    atomic_torch_save({"global_step": 1}, path)
    real = torch.save
    faults._patch_checkpoint_write(1, faults._enospc)
    try:
        with pytest.raises(CheckpointWriteError, match=r"could not write checkpoint .*last.ckpt"):
            atomic_torch_save({"global_step": 2}, path)
    finally:
        torch.save = real
    assert torch.load(path, weights_only=True) == {"global_step": 1}
    assert [q.name for q in tmp_path.iterdir()] == ["last.ckpt"]


def test_recover_checkpoints_undoes_an_interrupted_directory_swap(tmp_path):
    """DeepSpeed checkpoints are directories swapped in via a set-aside copy."""
    from vat.checkpoint import aside_path, recover_checkpoints
    from vat.io import partial_path

    last = tmp_path / "last.ckpt"
    aside = aside_path(last)
    aside.mkdir()
    (aside / "shard").write_text("old")
    partial = partial_path(last)
    partial.mkdir()  # crashed after moving the old one aside, before renaming the new one
    done = recover_checkpoints(tmp_path)
    assert (last / "shard").read_text() == "old" and not aside.exists() and not partial.exists()
    assert len(done) == 2
    # crashed after the rename, before deleting the old one: the new one stays
    aside.mkdir()
    (aside / "shard").write_text("older")
    recover_checkpoints(tmp_path)
    assert (last / "shard").read_text() == "old" and not aside.exists()


def test_a_set_aside_directory_is_hidden_beside_the_checkpoint(tmp_path):
    assert aside_path(tmp_path / "last.ckpt") == tmp_path / ".last.ckpt.previous"


def test_a_full_disk_names_the_file_the_free_space_and_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda d: usage(0, 0, 3 * 2**20 + 2**19))
    for code in (errno.ENOSPC, errno.EDQUOT):
        err = write_error(path, OSError(code, os.strerror(code)))
        assert isinstance(err, CheckpointWriteError) and isinstance(err, OSError)
        assert err.errno == code
        assert err.strerror == (
            f"could not write checkpoint {path}: {os.strerror(code)} (3.5 MiB free on the device "
            f"of {tmp_path}); free space or point callbacks.checkpoint.dirpath at a larger disk. "
            f"{INTACT}"
        )


def test_other_write_errors_name_the_file_and_the_reason_only(tmp_path):
    path = tmp_path / "last.ckpt"
    err = write_error(path, PermissionError(errno.EACCES, "Permission denied"))
    assert err.errno == errno.EACCES
    assert err.strerror == f"could not write checkpoint {path}: Permission denied. {INTACT}"
    # a full disk whose free space cannot be read: the fix without the number
    gone = tmp_path / "gone" / "last.ckpt"
    err = write_error(gone, OSError(errno.ENOSPC, "No space left on device"))
    assert err.strerror == (
        f"could not write checkpoint {gone}: No space left on device; free space or point "
        f"callbacks.checkpoint.dirpath at a larger disk. {INTACT}"
    )


def test_the_checkpoint_io_writes_atomically_and_takes_no_storage_options(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / "checkpoints" / "epoch=0-step=3.ckpt"
    ckpt = {"global_step": 3, "state_dict": {"w": torch.arange(4.0)}}
    io.save_checkpoint(ckpt, path)  # the directory is created
    back = torch.load(path, weights_only=True)
    assert back["global_step"] == 3 and torch.equal(back["state_dict"]["w"], torch.arange(4.0))
    assert os.listdir(path.parent) == [path.name]  # no partial file left beside it
    with pytest.raises(TypeError, match="AtomicCheckpointIO takes no storage_options"):
        io.save_checkpoint(ckpt, path, storage_options={"compress": True})


def test_recovery_removes_unfinished_writes_and_nothing_else(tmp_path, caplog):
    assert recover_checkpoints(tmp_path / "nope") == []  # no checkpoint dir yet: nothing to do
    (tmp_path / ".last.ckpt.partial-123").write_bytes(b"half")  # a killed file write
    (tmp_path / ".epoch=0-step=2.ckpt.partial").mkdir()  # a killed DeepSpeed directory write
    (tmp_path / ".epoch=0-step=2.ckpt.partial" / "shard").write_bytes(b"half")
    for name in ("last.ckpt", ".hidden", "notes.partial.txt"):
        (tmp_path / name).write_bytes(b"whole")
    with caplog.at_level("WARNING", logger="vat.checkpoint"):
        done = recover_checkpoints(tmp_path)
    assert done == ["removed unfinished .epoch=0-step=2.ckpt.partial",
                    "removed unfinished .last.ckpt.partial-123"]  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.ckpt",
                                                          "notes.partial.txt"]  # fmt: skip
    assert caplog.text.count(f"checkpoint recovery in {tmp_path}: removed unfinished") == 2
    assert recover_checkpoints(tmp_path) == []  # once is enough
