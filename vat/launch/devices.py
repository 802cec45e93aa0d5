"""`trainer.devices` read once, as Lightning reads it: how many processes a node runs.

Lightning takes a count (``8``, ``"8"``), a list of device ids (``[0, 1]``) or a string of ids with
a comma (``"0,1"``, ``"3,"``: device 3 only), and ``"auto"`` or ``-1`` for "every visible device".
The string rule is Lightning's ``_normalize_parse_gpu_string_input``
(`lightning.fabric.utilities.device_parser`); it is restated here rather than imported because
that module imports torch, and this one runs where torch is not wanted: in the process that submits
a sweep (`vat.launch.LaunchCheck`) and before `train` loads anything (`vat.launch.check_launch`).
``tests/launch/test_devices.py`` checks that both read every string the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_FORMS = 'give a count (8, "8"), a list of device ids ([0, 1], "0,1") or "auto"/-1'


def parse_devices(devices: Any) -> int | None:
    """The number of devices (processes) per node that `trainer.devices` asks for; None for
    ``"auto"`` and ``-1``, whose count only Lightning knows, on the machine that runs.

    Raises `ValueError` naming ``trainer.devices`` for anything else Lightning would refuse:
    0 (no device), another negative number, a boolean, a repeated id, a word.
    """
    ids: Sequence[Any]
    if isinstance(devices, str):
        s = devices.strip()
        if s.lower() == "auto" or s == "-1":
            return None
        if "," not in s:
            return _count(devices, s)
        ids = [x.strip() for x in s.split(",") if x]  # as Lightning: "0,1" and "3," are ids
        if not all(x.isdigit() for x in ids):
            raise _invalid(devices, "device ids are whole numbers")
    elif isinstance(devices, bool):  # before int: True is an int
        raise _invalid(devices, "not a boolean")
    elif isinstance(devices, int):
        return None if devices == -1 else _count(devices, devices)
    elif isinstance(devices, Sequence):  # a list, a tuple, an OmegaConf ListConfig
        ids = list(devices)
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in ids):
            raise _invalid(devices, "device ids are whole numbers")
    else:
        raise _invalid(devices, "")
    if not ids:
        raise _invalid(devices, "no device ids")
    if len(set(map(int, ids))) != len(ids):
        raise _invalid(devices, "each device id once")
    return len(ids)


def device_count(devices: Any, purpose: str) -> int:
    """`parse_devices`, where a number is needed (`purpose` says for what): "auto" and -1 raise."""
    n = parse_devices(devices)
    if n is None:
        raise ValueError(
            f"trainer.devices={devices!r}: give a number or a list of device ids, so that {purpose}"
        )
    return n


def _count(devices: Any, n: int | str) -> int:
    if isinstance(n, str):
        if not n.isdigit():
            raise _invalid(devices, "")
        n = int(n)
    if n < 1:
        raise _invalid(devices, "at least one device")
    return n


def _invalid(devices: Any, why: str) -> ValueError:
    return ValueError(f"trainer.devices={devices!r}: {why + '; ' if why else ''}{_FORMS}")
