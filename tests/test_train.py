"""`train.py` end to end on the tiny model: each method, the curve, parameters that move.

Crashes and resume: tests/reliability/test_crashes.py."""

import json
from pathlib import Path

import pytest

from tests.overrides import FAST

ROOT = Path(__file__).resolve().parents[1]


def curve(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "vat_curve.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "sft", "orpo"])
def test_train_method_end_to_end(compose_cfg, method):
    """Every method end to end; orpo is the method added as one YAML file plus one module."""
    from vat.train import train

    cfg = compose_cfg(
        "train", [*FAST, f"method={method}", "trainer.max_steps=4", "callbacks.vat.every_n_steps=2"]
    )
    out = Path(cfg.paths.output_dir)
    summary = train(cfg)
    rows = curve(out)
    assert [(r["step"], r["probe"]) for r in rows] == [
        (0, "likelihood"),
        (2, "likelihood"),
        (4, "likelihood"),
    ]
    assert rows[0]["gain"] == 0 and rows[0]["gain_too_small"] is True
    assert rows[-1]["gain"] != 0 and set(rows[-1]["shift"]) >= {"benevolence", "power"}
    assert set(rows[-1]) >= {"nvat_offdiag_excess", "nvat_offdiag_null", "p_nvat", "p_gain",
                             "gnd_l1_null", "p_drift", "p_uneven", "p_circumplex"}  # fmt: skip
    # the trained adapter moved: its B matrices are no longer zero
    from safetensors.torch import load_file

    adapter = load_file(out / "hf_adapter" / "adapter_model.safetensors")
    assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in adapter.items())
    assert (out / "hf_model" / "config.json").is_file()
    assert {"epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt", "last.ckpt", "config.yaml"} <= {
        p.name for p in (out / "checkpoints").iterdir()
    }
    assert (out / "report.md").is_file() and (out / "report_likelihood" / "curve.png").is_file()
    final = summary["final"]["likelihood"]
    assert final["step"] == 4 and {"nvat_offdiag_excess", "p_nvat", "p_gain"} <= set(final)
    assert final["nvat_offdiag_excess"] == pytest.approx(rows[-1]["nvat_offdiag_excess"])
    json.loads((out / "summary.json").read_text())  # strict JSON
    if method == "dpo":
        gap = json.loads((out / "value_gap.json").read_text())
        assert gap["n_pairs"] == summary["data"]["n_train_pairs_target"]
        # step-0 DPO loss is ln 2 (policy == reference): the first logged training loss
        import csv

        metrics = list(csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open()))
        first = next(float(r["train/loss"]) for r in metrics if r.get("train/loss"))
        assert first == pytest.approx(0.6931, abs=1e-3)


@pytest.mark.slow
def test_prompting_method_measures_with_each_probe(compose_cfg):
    from vat.train import train

    cfg = compose_cfg("train", [*FAST, "method=prompting", "method.intervention.shots=[1,2]"])
    res = train(cfg)
    out = Path(cfg.paths.output_dir)
    assert set(res) == {"likelihood"} and [r["strength"] for r in res["likelihood"]["results"]] == [
        1,
        2,
    ]
    assert (out / "likelihood" / "vat.json").is_file()
