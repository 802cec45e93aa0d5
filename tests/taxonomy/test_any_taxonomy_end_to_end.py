"""Any value system end to end: a toy taxonomy defined here (3 values, no structure; and 3 values
in two clusters) with items written here runs `train.py` (tiny model, 2 steps), `evaluate.py` and a
2-cell sweep report. Nothing in `vat/` may assume Schwartz for this to pass."""

import json
from pathlib import Path

import pytest
import yaml

from tests.overrides import FAST

VALUES = {  # value -> (express action, suppress action), templated over the scenes below
    "thrift": ("I compare prices at three stalls and buy the cheapest sound {thing}.",
               "I buy the first shiny {thing} I see at twice the usual price."),
    "candor": ("I tell my friend plainly that the {thing} she chose will not work.",
               "I tell my friend the {thing} she chose is perfect though it will not work."),
    "play": ("I turn choosing the {thing} into a silly game with my cousins.",
             "I pick the {thing} quickly and silently so that we can get back to chores."),
}  # fmt: skip
THINGS = ["kettle", "bicycle", "tent", "lamp", "radio", "backpack", "stove", "chair",
          "umbrella", "ladder", "blanket", "teapot", "scooter", "drill", "mirror", "clock"]  # fmt: skip
N_TEST = 8  # held-out scenes: enough for the coupling (min_overlap 8)


def write_taxonomy(d: Path, structure: dict | None) -> Path:
    definition = {
        "name": "toy",
        "label": "Toy values",
        "values": [{"name": v, "label": v.title(), "goal": f"the goal of {v}"} for v in VALUES],
    }
    if structure is not None:
        definition["structure"] = structure
    f = d / "toy.yaml"
    f.write_text(yaml.safe_dump(definition))
    return f


def write_items(d: Path) -> Path:
    rows = []
    for i, thing in enumerate(THINGS):
        scene = f"scene_{i:02d}"
        for value, (express, suppress) in VALUES.items():
            for pol, text in (("express", express), ("suppress", suppress)):
                rows.append({
                    "id": f"{scene}/{value}/{pol}", "scene_id": scene, "country": "Kenya",
                    "domain": "Leisure", "scenario": f"My family needs a new {thing} this week.",
                    "value": value, "polarity": pol, "action": text.format(thing=thing),
                    "split": "test" if i < N_TEST else "train",
                })  # no micro_value: the toy's values have no sub-items  # fmt: skip
    f = d / "toy.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return f


STRUCTURES = {
    "none": None,
    "clusters": {
        "kind": "clusters",
        "clusters": {"prudent": ["thrift", "candor"], "fun": ["play"]},
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("structure", list(STRUCTURES))
def test_a_toy_taxonomy_trains_evaluates_and_reports(compose_cfg, tmp_path, structure):
    from vat.evaluate import evaluate
    from vat.report.sweep import build_sweep_report
    from vat.train import train

    tax = write_taxonomy(tmp_path, STRUCTURES[structure])
    data = write_items(tmp_path)
    common = [f"taxonomy.path={tax}", "taxonomy.name=toy", "data=file", f"data.source={data}",
              "metrics.min_overlap=4"]  # fmt: skip

    # train.py: 2 DPO steps toward "candor"; the curve and report name the toy's values only
    cfg = compose_cfg("train", [*FAST, *common, "value.name=candor", "trainer.max_steps=2",
                                "callbacks.vat.every_n_steps=2"])  # fmt: skip
    out = Path(cfg.paths.output_dir)
    summary = train(cfg)
    rows = [json.loads(x) for x in (out / "vat_curve.jsonl").read_text().splitlines()]
    assert [(r["step"], r["probe"]) for r in rows] == [(0, "likelihood"), (2, "likelihood")]
    assert set(rows[-1]["shift"]) == set(VALUES)
    final = json.loads((out / "report_likelihood" / "vat.json").read_text())
    assert final["values"] == list(VALUES) and final["taxonomy"] == "toy"
    assert final["structure_kind"] == ("clusters" if structure == "clusters" else "none")
    report = (out / "report_likelihood" / "report.md").read_text()
    assert "Candor" in report and "Benevolence" not in report
    if structure == "clusters":
        assert set(final["structure"]) == {"cluster_contrast", "cluster_within",
                                           "cluster_between", "cluster_p"}  # fmt: skip
        assert "Structure: the clusters" in report
    else:  # no structure declared: no structure statistic, no section, no radar plot
        assert final["structure"] == {} and "## 5. Structure" not in report
        assert not (out / "report_likelihood" / "shift_circumplex.png").exists()
    assert summary["target"] == "candor"

    # evaluate.py (prompting, 1 shot) into two cells of a sweep, then the sweep report
    sweep = tmp_path / "sweep"
    for value in ("thrift", "play"):
        cell = sweep / f"value={value}"
        ecfg = compose_cfg("evaluate", [*common, "model=tiny", f"value.name={value}",
                                        "intervention.shots=1", f"paths.output_dir='{cell}'",
                                        "probe.progress=false", "metrics.n_bootstrap=100",
                                        "metrics.n_permutations=200"])  # fmt: skip
        payload = evaluate(ecfg)
        assert payload["target"] == value and payload["taxonomy"]["name"] == "toy"
        (cell / "status.json").write_text(json.dumps({"status": "done"}))
    md = build_sweep_report(sweep).read_text()
    assert "Thrift" in md and "Play" in md and "Benevolence" not in md
    import pandas as pd

    table = pd.read_csv(sweep / "report" / "sweep_table.csv")
    assert list(table["value"]) == ["thrift", "play"]  # the taxonomy's order


@pytest.mark.slow
def test_moral_foundations_train_toward_a_foundation(compose_cfg):
    """taxonomy=mft: the bundled foundation items, value=loyalty, the cluster structure reported."""
    from vat.train import train

    cfg = compose_cfg("train", [*FAST, "taxonomy=mft", "value=loyalty", "trainer.max_steps=2",
                                "callbacks.vat.every_n_steps=2"])  # fmt: skip
    out = Path(cfg.paths.output_dir)
    summary = train(cfg)
    assert summary["target"] == "loyalty" and summary["data"]["n_heldout_scenes"] == 14
    final = json.loads((out / "report_likelihood" / "vat.json").read_text())
    assert final["taxonomy"] == "mft" and final["structure_kind"] == "clusters"
    assert final["values"] == ["care", "fairness", "loyalty", "authority", "sanctity", "liberty"]
    assert 0.1 <= final["structure"]["cluster_p"] <= 1  # 10 labelings: p is a multiple of 0.1
    report = (out / "report.md").read_text()
    assert "Loyalty" in report and "Moral Foundations" in report


@pytest.mark.slow
def test_cross_taxonomy_measurement_and_the_prediction(compose_cfg):
    """measure=[mft] beside a Schwartz run: every foundation's shift with its interval at every
    point, the 10 x 6 scene-level coupling, and the Feldman prediction tested with a verdict."""
    from vat.metrics.prediction import VERDICTS
    from vat.train import train

    cfg = compose_cfg("train", [*FAST, "measure=[mft]", "value=security", "trainer.max_steps=2",
                                "callbacks.vat.every_n_steps=2", "prediction.n_perm=999"])  # fmt: skip
    out = Path(cfg.paths.output_dir)
    summary = train(cfg)
    rows = [json.loads(x) for x in (out / "vat_curve.jsonl").read_text().splitlines()]
    foundations = ["care", "fairness", "loyalty", "authority", "sanctity", "liberty"]
    for r in rows:
        c = r["cross"]["mft"]
        assert c["values"] == foundations and c["n_scenes"] == 14
        assert len(c["coupling"]) == 10 and all(len(row) == 6 for row in c["coupling"])
    assert all(v == 0 for v in rows[0]["cross"]["mft"]["shift"].values())  # step 0: post = pre
    last = rows[-1]["cross"]["mft"]
    assert any(v != 0 for v in last["shift"].values())
    assert all(last["shift_lo"][v] <= last["shift"][v] <= last["shift_hi"][v] for v in foundations)
    assert (out / "states" / "step0000002_likelihood@mft").is_dir()
    final = json.loads((out / "report_likelihood" / "vat.json").read_text())
    preds = final["predictions"]
    assert set(preds) == {"schwartz", "mft"}  # the circle within, Feldman 2021 across
    assert preds["mft"]["prediction"] == "feldman2021" and preds["mft"]["n_perm"] == 720
    assert all(p["verdict"] in VERDICTS for p in preds.values())
    assert summary["final"]["likelihood"]["predictions"] == {
        t: p["verdict"] for t, p in preds.items()
    }
    report = (out / "report_likelihood" / "report.md").read_text()
    assert "Prediction for mft" in report and "Verdict:" in report and "Loyalty" in report
