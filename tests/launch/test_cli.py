"""`vat.launch.cli` (``python -m vat.launch``): the sbatch subcommand prints the script, and the
example scripts in launch/ are its current output."""

import os
import shlex

import pytest

from tests.launch.helpers import LAUNCH, sbatch_flags
from vat import launch as VL


def test_sbatch_cli_prints_the_script(capsys):
    argv = ["--nodes", "2", "--gpus-per-node", "8", "--time", "24:00:00", "--signal-lead", "300",
            "--sbatch", "qos=high", "--sbatch=--exclusive", "--", "value=benevolence", "method=dpo"]  # fmt: skip
    assert VL.main(["sbatch", *argv]) == 0
    text = capsys.readouterr().out
    flags = sbatch_flags(text)
    assert flags["signal"] == "SIGUSR1@300" and flags["qos"] == "high" and flags["nodes"] == "2"
    assert flags["exclusive"] is True
    assert "# Rendered by: python -m vat.launch sbatch " + shlex.join(argv) in text
    assert VL.main(["nope"]) == 2


@pytest.mark.parametrize("name", ["sbatch_1node_8gpu.sh", "sbatch_2node_8gpu.sh"])
def test_example_scripts_are_rendered_by_the_cli(name, tmp_path):
    """launch/*.sh are `python -m vat.launch sbatch` output: re-render from their header line."""
    text = (LAUNCH / name).read_text()
    command = next(line for line in text.splitlines() if line.startswith("# Rendered by: "))
    argv = shlex.split(command.removeprefix("# Rendered by: "))
    assert argv[:4] == ["python", "-m", "vat.launch", "sbatch"]
    i = argv.index("--")
    out = tmp_path / "again.sh"
    VL.main(["sbatch", *argv[4:i], "-o", str(out), *argv[i:]])
    assert out.read_text().replace(str(out), f"launch/{name}") == text, (
        f"launch/{name} is stale: re-run {command[16:]} -o launch/{name}"
    )
    assert os.access(LAUNCH / name, os.X_OK)
