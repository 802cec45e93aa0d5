"""What the report tests share: pre/post states with a planted gain and a planted loss, and a check
that a file is a real PNG."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from tests.schwartz import BASIC_VALUES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TARGET = "benevolence"
NOISY = "power"  # marked near chance in the validity table


def states(n_scenes: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pre/post states with a planted gain on the target and a planted loss on `NOISY`."""
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(n_scenes, len(BASIC_VALUES)))
    post = pre + rng.normal(scale=0.1, size=pre.shape)
    post[:, BASIC_VALUES.index(TARGET)] += 0.5
    post[:, BASIC_VALUES.index(NOISY)] -= 0.25
    return pre, post


def assert_png(path: Path, min_side: int = 100) -> None:
    """A real, non-trivial PNG: magic bytes, then the IHDR chunk's width and height."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= min_side and height >= min_side, (width, height)
    assert len(data) > 2000  # more than a blank canvas
