"""The sweep report's controls, end to end: a real method, its placebo, two seeds each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests import schwartz as V
from tests.overrides import FAST as TINY
from tests.schwartz import SCHWARTZ
from vat.results import cell_states

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_placebo_and_seeds_sweep_reports_net_tax_repeats_and_regression(tmp_path):
    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    p = subprocess.run(
        [sys.executable, "train.py", "-m", *TINY, "trainer.max_steps=2",
         "callbacks.vat.every_n_steps=1", "method=dpo,dpo_placebo", "seed=0,1",
         f"hydra.sweep.dir={sweep}", f"paths.cache_dir={cache}"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=1200,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    cells = sorted(d.name for d in sweep.iterdir() if d.is_dir() and d.name != "report")
    assert len(cells) == 4  # one per (method, seed): seed is part of a cell's name
    # every cell kept the item scores of its last point beside its pre state
    pre, post = cell_states(sweep / cells[0])["likelihood"]
    assert pre.name == "states_pre_likelihood" and post.name == "step0000002_likelihood"

    out = sweep / "report"
    rep = pd.read_csv(out / "repeats.csv")
    assert sorted(rep["method"]) == ["dpo", "dpo_placebo"] and set(rep["n_seeds"]) == {2}
    assert rep[["gain", "gain_lo", "gain_hi", "sd_gain_between_seeds"]].notna().all().all()
    net = pd.read_csv(out / "net_of_placebo.csv")
    assert len(net) == 10 and set(net["value"]) == set(V.BASIC_VALUES)
    assert set(net["placebo"]) == {"dpo_placebo"} and set(net["method"]) == {"dpo"}
    row = net[net["value"] == "security"].iloc[0]
    assert row["net"] == pytest.approx(row["real"] - row["placebo_shift"])
    assert row["net_lo"] <= row["net"] <= row["net_hi"] and row["p_net_holm"] >= row["p_net"]
    reg = pd.read_csv(out / "regression.csv")
    assert len(reg) == 9 and set(reg["method"]) == {"dpo"}  # the real arm only
    assert {"b", "b_lo", "b_hi", "p_b", "p_b_holm", "len_diff", "max_vif"} <= set(reg.columns)
    assert (reg["n"] == 2 * 14).all()  # two seeds x 14 held-out scenes
    md = (out / "report.md").read_text()
    assert "## Is the tax real? dpo toward Benevolence net of dpo_placebo" in md
    assert "## Repeats: cells that differ only by seed" in md
    assert "## Referee's regression" in md and "b_v * D[x, benevolence]" in md


def _fake_cells(
    sweep: Path,
    planted: float,
    seeds=(0, 1, 2),
    target="benevolence",
    methods=("dpo", "dpo_placebo"),
):
    """dpo / dpo_placebo cells with synthetic item scores on the bundled held-out scenes: every
    value moves by a common 0.2 in both arms (the register effect a placebo shares), and the real
    arm moves security by `planted` more, and its target by 0.3."""
    import json

    import numpy as np
    from omegaconf import OmegaConf

    from vat.data import BUNDLED, load_items
    from vat.probes.base import ProbeResult

    held = load_items(BUNDLED, SCHWARTZ).heldout()
    units = pd.DataFrame([{"scene_id": it.scene_id, "value": it.value,
                           "micro_value": it.micro_value} for it in held if it.polarity == "express"])  # fmt: skip
    rng = np.random.default_rng(0)
    scene_effect = {s: rng.normal(0, 0.1) for s in units.scene_id.unique()}
    for method in methods:
        lam = None
        if isinstance(method, tuple):  # ("dpo_anchored", lambda): common shift 0.05, not 0.2
            method, lam = method
        for seed in seeds:
            name = f"+arm=l{lam:g}" if lam is not None else f"method={method}"
            d = sweep / f"{name},seed={seed},value={target}"
            (d / "states").mkdir(parents=True)
            m = {"name": method, "control_of": "dpo" if method == "dpo_placebo" else None}
            if lam is not None:
                m.update({"anchor_per_pair": 1, "module": {"anchor_weight": lam,
                          "anchor": {"_target_": "vat.anchor.pair_anchor"}}})  # fmt: skip
            OmegaConf.save(OmegaConf.create({
                "model": {"name": "m"}, "value": {"name": target}, "seed": seed, "method": m,
                "data": {"_target_": "vat.data.load_items", "source": "bundled"},
            }), d / "config.yaml")  # fmt: skip
            (d / "status.json").write_text(json.dumps({"status": "done"}))
            pre = units.assign(score=rng.normal(0, 0.2, len(units)))
            common = 0.2 if lam is None else 0.05
            move = common + rng.normal(0, 0.02) + units.scene_id.map(scene_effect)
            if lam is not None:
                move = move + (0.3 + 0.15) * (units.value == "benevolence")
            if method == "dpo":
                move = (
                    move
                    + planted * (units.value == "security")
                    + 0.3 * (units.value == "benevolence")
                )
            post = pre.assign(score=pre.score + move + rng.normal(0, 0.05, len(units)))
            items = units.assign(id=range(len(units)), polarity="express", pref=0.0)
            ProbeResult("likelihood", items, pre).save(d / "states_pre_likelihood")
            ProbeResult("likelihood", items, post).save(d / "states" / "step0000010_likelihood")


@pytest.mark.parametrize("planted", [0.0, 0.3])
def test_net_of_placebo_finds_a_planted_shift_and_nets_out_the_common_one(tmp_path, planted):
    from vat.measure.arms import analyse, collect_arms

    _fake_cells(tmp_path, planted)
    cells = {d.name: {"status": "done", "overrides": d.name.split(",")}
             for d in tmp_path.iterdir()}  # fmt: skip
    arms = collect_arms(tmp_path, cells)
    assert sorted((a["method"], len(a["runs"])) for a in arms) == [("dpo", 3), ("dpo_placebo", 3)]
    res = analyse(arms, n_boot=500)
    net = res["net"].set_index("value")
    # the common 0.2 moved every value in both arms: it is not a tax of the value
    assert (res["repeats"]["gain"] > 0.15).all()
    others = net.drop(index=["benevolence", "security"])
    assert (others["real"] > 0.1).all() and (others["p_net_holm"] > 0.05).all()
    assert net.loc["benevolence", "net"] == pytest.approx(0.3, abs=0.05)
    if planted:
        assert net.loc["security", "p_net_holm"] < 0.05
        assert net.loc["security", "net"] == pytest.approx(planted, abs=0.05)
    else:
        assert net.loc["security", "p_net_holm"] > 0.05
    reg = res["regression"]
    assert len(reg) == 9 and (reg["n"] == 3 * 14).all()


def test_aggregate_over_targets_in_the_report(tmp_path):
    from vat.report.controls import controls_section

    _fake_cells(tmp_path, 0.0, seeds=(0, 1), methods=("dpo",))
    _fake_cells(tmp_path, 0.0, seeds=(0, 1), target="tradition", methods=("dpo",))
    cells = {d.name: {"status": "done", "overrides": d.name.split(",")}
             for d in tmp_path.iterdir()}  # fmt: skip
    out = tmp_path / "report"
    out.mkdir()
    lines = controls_section(tmp_path, out, cells, n_boot=300)
    agg = pd.read_csv(out / "over_targets.csv")
    assert len(agg) == 1 and agg["n_targets"].iloc[0] == 2
    assert agg["targets"].iloc[0] == "benevolence,tradition"
    assert agg["gnd_lo"].iloc[0] <= agg["gnd_l1_bc"].iloc[0] <= agg["gnd_hi"].iloc[0]
    assert "## Aggregate tax over targets" in "\n".join(lines)


def test_frontier_reports_anchoring_that_lowers_the_tax_at_the_same_gain(tmp_path):
    """Plain DPO moves every value by 0.2 and the target by 0.5; anchored (lambda = 3) moves the
    others by 0.05 and the target by 0.5: the off-target shift falls by 0.15, significantly, at a
    gain within plain DPO's interval; the placebo is a row of its own."""
    from vat.report.controls import controls_section

    _fake_cells(tmp_path, 0.0, methods=("dpo", "dpo_placebo", ("dpo_anchored", 3.0)))
    cells = {d.name: {"status": "done", "overrides": d.name.split(",")}
             for d in tmp_path.iterdir()}  # fmt: skip
    out = tmp_path / "report"
    out.mkdir()
    text = "\n".join(controls_section(tmp_path, out, cells, n_boot=400))
    f = pd.read_csv(out / "frontier.csv").set_index("arm")
    assert list(f.index) == ["plain DPO", "anchored (pair_anchor), lambda = 3", "placebo"]
    anch = f.loc["anchored (pair_anchor), lambda = 3"]
    assert anch["d_off"] == pytest.approx(-0.15, abs=0.05) and anch["p_d_off"] < 0.05
    assert anch["d_gain"] == pytest.approx(0.0, abs=0.05)
    assert f.loc["plain DPO", "gnd_l1_bc"] == pytest.approx(0.4, abs=0.05)
    assert anch["gnd_l1_bc"] < 0.5 * f.loc["plain DPO", "gnd_l1_bc"]
    assert "lowered the off-target shift" in text and "within plain DPO's interval" in text
    assert (out / "frontier_benevolence_likelihood.png").is_file()
    # the placebo still pairs with plain DPO (the +arm= override does not split them)
    assert pd.read_csv(out / "net_of_placebo.csv")["method"].eq("dpo").all()
