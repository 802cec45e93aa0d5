"""`vat.launch.devices`: ``trainer.devices`` read once, as Lightning reads it, and counted."""

import re

import pytest
from omegaconf import OmegaConf

from vat import launch as VL


@pytest.mark.parametrize(
    ("devices", "count"),
    [(1, 1), (8, 8), ("8", 8), (" 2 ", 2), ([0, 1], 2), ((3,), 1), ("0,1", 2), ("1,3,", 2),
     ("3,", 1), ("0, 1", 2), ("auto", None), ("AUTO", None), (-1, None), ("-1", None)],
)  # fmt: skip
def test_parse_devices(devices, count):
    """Counted by hand: "0,1" is two device ids (Lightning's list form), not device count 0,1."""
    assert VL.parse_devices(devices) == count
    assert VL.parse_devices(OmegaConf.create({"d": devices}).d) == count  # as the config gives it


@pytest.mark.parametrize(
    ("devices", "why"),
    [(0, "at least one device"), ("0", "at least one device"), (-2, "at least one device"),
     (True, "not a boolean"), ("two", ""), ("0,a", "device ids are whole"), ([0, "1"], "device ids are whole"),
     ([0, True], "device ids are whole"), ([], "no device ids"), (",", "no device ids"),
     ([1, 1], "each device id once"), ("0,0", "each device id once"), (None, ""), (1.5, "")],
)  # fmt: skip
def test_parse_devices_refuses_what_lightning_refuses(devices, why):
    with pytest.raises(ValueError, match=rf"^trainer\.devices={re.escape(repr(devices))}: {why}"):
        VL.parse_devices(devices)


def test_parse_devices_reads_strings_as_lightning_does():
    from lightning.fabric.utilities.device_parser import _normalize_parse_gpu_string_input

    for s in ("1", "8", "0,1", "1,3,", "3,", "0, 1", "-1"):
        ids = _normalize_parse_gpu_string_input(s)  # a count, -1 (all) or a list of ids
        want = None if ids == -1 else ids if isinstance(ids, int) else len(ids)
        assert VL.parse_devices(s) == want, s


def test_device_count_needs_a_number_and_world_size_uses_it():
    from vat.trainer import world_size

    assert VL.device_count("0,1", "x") == 2
    with pytest.raises(ValueError, match=r"trainer.devices='auto': give a number .* so that x$"):
        VL.device_count("auto", "x")
    assert world_size(OmegaConf.create({"devices": "0,1", "num_nodes": 2})) == 4
    with pytest.raises(ValueError, match=r"trainer.devices=-1: .*batch.global_size"):
        world_size(OmegaConf.create({"devices": -1, "num_nodes": 1}))
