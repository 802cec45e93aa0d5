"""`vat.io`: atomic writes keep the old file whole on any failure and leave no partial file."""

from __future__ import annotations

import errno
import os

import pytest

from vat.io import atomic_file, atomic_write, partial_path, read_curve


def test_atomic_write_replaces_text_and_bytes(tmp_path):
    path = tmp_path / "sub" / "f.json"  # the directory is created
    atomic_write(path, "é\n")
    assert path.read_bytes() == "é\n".encode()
    atomic_write(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert os.listdir(path.parent) == ["f.json"]


@pytest.mark.parametrize("error", [OSError(errno.ENOSPC, "No space left on device"),
                                   KeyboardInterrupt()])  # fmt: skip
def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, error):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")
    with pytest.raises(type(error)), atomic_file(path) as f:
        f.write(b"half of the new")
        assert partial_path(path, os.getpid()).exists()  # written beside it, not over it
        raise error
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]


def test_a_failed_rename_keeps_the_old_file_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "f.txt"
    atomic_write(path, "old")

    def replace(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="cross-device"):
        atomic_write(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["f.txt"]


def test_the_partial_name_is_hidden_beside_the_file(tmp_path):
    assert partial_path(tmp_path / "last.ckpt", 12).name == ".last.ckpt.partial-12"
    assert partial_path(tmp_path / "last.ckpt").name == ".last.ckpt.partial"


def test_read_curve_drops_a_torn_last_row_and_blank_lines(tmp_path, caplog):
    path = tmp_path / "vat_curve.jsonl"
    path.write_text('{"step": 0}\n\n{"step": 2}\n{"step": 4, "ga')
    rows, torn = read_curve(path)
    assert rows == [{"step": 0}, {"step": 2}] and torn == 1
    assert f"{path}:4: an incomplete row" in caplog.text
