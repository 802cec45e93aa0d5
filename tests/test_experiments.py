"""Every experiment preset (conf/experiment/) runs: a real ``-m`` sweep of its grid, cut down.

Each preset is launched as its header says (``python train.py -m experiment=<name>``, or
evaluate.py for an evaluate preset) through the skip-done sweeper, the sweep manifest and the sweep
report, on the tiny model (`tests.overrides.FAST`) with training cut to one step. Its grid
(``hydra.sweeper.params``) keeps whole the axes that name what the preset compares (``method``,
``arm``: a real method and its placebo, plain and tax-aware DPO), so its report has something to
compare; every other axis (values, seeds) is cut to its first value. What the preset sets beyond
its grid (the shots, the judgment probe's two orders, batch sizes) stays as it is: that is what
this test exercises. Grids and cell names are checked, without running anything, in
tests/sweep/test_cell.py.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from tests.overrides import FAST
from vat.sweep.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
ONE_STEP = ["trainer.max_steps=1", "callbacks.vat.every_n_steps=1"]
COMPARED = ("method", "arm")  # grid axes kept whole; the others run their first value only


def script(preset: str) -> str:
    """The entry point the preset's header runs it with: ``python <script> -m experiment=...``."""
    header = (CONF / "experiment" / f"{preset}.yaml").read_text()
    found = set(re.findall(r"python (train|evaluate)\.py -m experiment=" + preset, header))
    assert len(found) == 1, f"conf/experiment/{preset}.yaml: its header names no one script"
    return found.pop()


def cut_grid(preset: str, entry: str) -> tuple[list[str], int]:
    """The overrides that run the preset (the tiny model, one step, the grid cut down) and the
    number of cells they make."""
    raw = OmegaConf.load(CONF / "experiment" / f"{preset}.yaml")
    fast = list(FAST)
    if OmegaConf.select(raw, "callbacks.progress", default="absent") is None:
        fast.remove("~callbacks.progress")  # the preset removes it already
    if preset == "paper_sft_dpo":  # keep the preset's judgment probe (both orders), its point
        fast.remove("~probe@probes.judgment")
    over = [f"experiment={preset}", *fast, *(ONE_STEP if entry == "train" else [])]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(entry, overrides=over, return_hydra_config=True)
    params = cfg.hydra.sweeper.params or {}
    assert params, f"experiment={preset} sets no grid (hydra.sweeper.params)"
    axes = {k: str(v) if k in COMPARED else str(v).split(",")[0] for k, v in params.items()}
    n_cells = 1
    for v in axes.values():
        n_cells *= len(v.split(","))
    # quoted: on a -m command line a=x,y would sweep the hydra key itself
    return [*over, *(f"hydra.sweeper.params.{k}='{v}'" for k, v in axes.items())], n_cells


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One cache for every preset: the tiny model and the shared pre state are built once."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_runs(preset, tmp_path, cache):
    entry = script(preset)
    over, n_cells = cut_grid(preset, entry)
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, f"{entry}.py", "-m", *over, f"hydra.sweep.dir={sweep}",
         f"paths.cache_dir={cache}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-4000:]

    cells = read_manifest(sweep)["cells"]
    assert len(cells) == n_cells and all(c["status"] == "done" for c in cells.values()), cells
    for cell in cells.values():
        check_cell(preset, Path(cell["dir"]))
    report = sweep / "report"
    assert (report / "report.md").is_file() and (report / "sweep_table.csv").is_file()
    if preset == "controls":  # DPO net of its placebo
        assert "dpo_placebo" in (report / "net_of_placebo.csv").read_text()
    if preset == "falsification":  # the verdicts net of the placebo, both taxonomies, with MDEs
        (row,) = json.loads((report / "falsification.json").read_text())
        assert set(row["verdicts"]) == {"schwartz", "mft"}
        for v in row["verdicts"].values():
            assert v["test"]["verdict"] and v["n_seeds"] == 1 and "prediction" in v["mde"]
        assert "Does the tax have structure?" in (report / "report.md").read_text()
    if preset == "tax_aware":  # the gain-vs-GND frontier of the anchored arms against plain DPO
        assert (report / "frontier.csv").is_file()


def check_cell(preset: str, out: Path) -> None:
    """A finished cell: its summary, and the VAT curve (training) or every strength (prompting)."""
    summary = json.loads((out / "summary.json").read_text())  # strict JSON
    cfg = OmegaConf.load(out / "config.yaml")
    probes = list(cfg.probes)
    if preset == "paper_sft_dpo":  # both scale orders: the order gap is checked after training
        assert probes == ["likelihood", "judgment"]
        assert list(cfg.probes.judgment.orders) == ["forward", "reverse"]
    if OmegaConf.select(cfg, "method.module") is not None:  # a training method: the VAT curve
        rows = [json.loads(x) for x in (out / "vat_curve.jsonl").read_text().splitlines()]
        assert sorted((r["step"], r["probe"]) for r in rows) == sorted(
            (s, n) for s in (0, 1) for n in probes
        )
        assert all(summary["final"][n]["step"] == 1 for n in probes)
        assert (out / "checkpoints" / "last.ckpt").is_file()
    else:  # prompting: one post state per strength, with every probe
        shots = list(cfg.method.intervention.shots)
        assert set(summary) == set(probes)
        assert all([r["strength"] for r in summary[n]["results"]] == shots for n in probes)
