"""`evaluate.py` end to end on the tiny model: files, metrics, cache, checkpoint and adapter posts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vat.metrics import VATResult
from vat.probes import LikelihoodProbe

FAST = [
    "model=tiny",
    "metrics.n_bootstrap=200",
    "metrics.n_permutations=500",
    "probe.progress=false",
]


@pytest.mark.slow
def test_prompting_strength_axis_writes_everything(compose_cfg):
    from vat.evaluate import evaluate

    cfg = compose_cfg(
        "evaluate",
        [*FAST, "intervention=prompting", "intervention.shots=[2,4]", "value=benevolence"],
    )
    payload = evaluate(cfg)
    out = Path(cfg.paths.output_dir)
    for name in ("vat.json", "report.md", "config.yaml", "states.npz", "shift_circumplex.png",
                 "coupling.png", "tau.png", "gain_vs_tax.png"):  # fmt: skip
        assert (out / name).is_file(), name
    for d in ("states_pre", "states_post_k2", "states_post_k4"):
        assert (out / d / "items.parquet").is_file()
    data = json.loads((out / "vat.json").read_text())  # strict JSON: NaN written as null
    assert data == json.loads(json.dumps(payload))
    assert [r["strength"] for r in data["results"]] == [2, 4]
    stored = {k: v for k, v in data["results"][1].items() if k != "strength"}
    res = VATResult.from_dict(stored)
    assert res.to_dict() == stored  # vat.json round-trips (null -> NaN, "inf" -> inf, and back)
    assert res.target == "benevolence" and res.n_scenes == 14 and len(res.tau) == 9
    assert res.test_method == "bootstrap-t" and res.n_permutations == 500
    assert res.eps_units in ("pre_sd", "score") and res.min_overlap == 8
    assert set(data["stability"]) >= {"monotonicity", "sign_flips", "volatility"}
    # the stability profile tracks the headline numbers: bias-corrected GND, debiased nVAT
    assert data["stability"]["nvats"][-1] == stored["nvat_offdiag_excess"]
    assert data["stability"]["gnds"][-1] == stored["gnd_l1_bc"]
    assert len(data["validity"]) == 10
    arrays = np.load(out / "states.npz")
    assert arrays["pre"].shape == arrays["post_k4"].shape == (14, 10)
    # gain in vat.json is the target column's mean shift in states.npz
    t = list(arrays["values"]).index("benevolence")
    assert res.gain == pytest.approx(float((arrays["post_k4"] - arrays["pre"])[:, t].mean()))
    report = (out / "report.md").read_text()
    assert "Probe validity" in report and f"{res.gain:.3f}" in report
    assert "bootstrap-t" in report and "sign-flip" not in report


@pytest.mark.slow
def test_pre_state_is_cached(compose_cfg, monkeypatch):
    from vat.evaluate import evaluate

    overrides = [*FAST, "intervention.shots=1", "value=power"]
    first = evaluate(compose_cfg("evaluate", overrides))
    calls = []
    real = LikelihoodProbe.score
    monkeypatch.setattr(
        LikelihoodProbe,
        "score",
        lambda self, *a, **k: (
            calls.append(a[3] if len(a) > 3 else k.get("ctx")) or real(self, *a, **k)
        ),
    )
    second = evaluate(compose_cfg("evaluate", overrides))
    assert len(calls) == 1 and calls[0] is not None  # only the prompted post state was scored
    assert first["results"] == second["results"]


@pytest.mark.slow
def test_post_checkpoint_and_zero_adapter(compose_cfg, tiny_dir, tmp_path):
    """A LoRA adapter fresh from init (B = 0) is the base model: gain 0 -> NaN tax with a flag.
    A checkpoint with perturbed weights moves the scores."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from vat.evaluate import evaluate

    base = AutoModelForCausalLM.from_pretrained(tiny_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules="all-linear")).save_pretrained(
        tmp_path / "adapter"
    )
    out = evaluate(
        compose_cfg("evaluate", [*FAST, "intervention=none", f"post_model={tmp_path / 'adapter'}"])
    )
    r = out["results"][0]
    assert r["gain"] == pytest.approx(0.0, abs=1e-9) and r["gain_too_small"] is True
    assert r["gnd_l1"] is None and all(v is None for v in r["tau"].values())

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    model.save_pretrained(tmp_path / "ckpt")
    out = evaluate(
        compose_cfg("evaluate", [*FAST, "intervention=none", f"post_model={tmp_path / 'ckpt'}"])
    )
    assert out["results"][0]["gain"] != 0 and out["intervention"].startswith("checkpoint:")


def test_nothing_to_compare_is_an_error(compose_cfg):
    from vat.evaluate import evaluate

    with pytest.raises(ValueError, match="nothing to compare"):
        evaluate(compose_cfg("evaluate", [*FAST, "intervention=none"]))
