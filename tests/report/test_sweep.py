"""`vat.report.sweep`: the sweep report from finished, failed and pending cells (tables, trajectories,
tax matrices, BH across cells, the HTML), and a missing sweep dir named."""

import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from tests.schwartz import SCHWARTZ
from vat.sweep.manifest import update_manifest


def _fake_cell(sweep, name, value, method, status="done", kind="prompting", seed=0):
    """A finished cell as train.py writes it, with real metrics on synthetic states."""
    import numpy as np

    from tests import schwartz as V
    from vat.metrics import compute_vat

    d = sweep / name
    d.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"model": {"name": "m"}, "value": {"name": value},
                                     "method": {"name": method}}), d / "config.yaml")  # fmt: skip
    (d / "status.json").write_text(
        json.dumps({"status": status, "error": "boom" * (status == "failed")})
    )
    if status != "done":
        return
    rng = np.random.default_rng(seed)
    pre = rng.normal(size=(30, 10))
    results = []
    for k in (2, 4):
        post = pre + 0.05 * k * rng.normal(size=pre.shape)
        post[:, V.BASIC_VALUES.index(value)] += 0.1 * k
        res = compute_vat(
            pre, post, value, SCHWARTZ, V.BASIC_VALUES, n_bootstrap=50, n_permutations=50, seed=0
        )
        results.append({"strength": k, **res.to_dict()})
    (d / "likelihood").mkdir()
    (d / "likelihood" / "vat.json").write_text(
        json.dumps({"probe": "likelihood", "results": results}, allow_nan=False)
    )


def test_report_reads_prompting_cells_and_lists_unfinished_ones(tmp_path):
    from vat.report.sweep import build_sweep_report

    _fake_cell(tmp_path, "value=power", "power", "prompting")
    _fake_cell(tmp_path, "value=security", "security", "prompting", seed=1)
    _fake_cell(tmp_path, "value=tradition", "tradition", "prompting", status="failed")
    update_manifest(tmp_path, "value=hedonism", status="pending", overrides=["value=hedonism"])
    md = build_sweep_report(tmp_path).read_text()
    table = pd.read_csv(tmp_path / "report" / "sweep_table.csv")
    assert list(table["value"]) == ["power", "security"]  # circumplex order
    assert set(table["point"]) == {"k=4"} and (table["gain"] > 0).all()
    unfinished = pd.read_csv(tmp_path / "report" / "unfinished.csv")
    assert dict(zip(unfinished["cell"], unfinished["status"], strict=True)) == {
        "value=hedonism": "pending",
        "value=tradition": "failed",
    }
    assert unfinished.set_index("cell").loc["value=hedonism", "value"] == "hedonism"
    assert "boom" in md and "value=hedonism" in md
    traj = pd.read_csv(tmp_path / "report" / "trajectories.csv")
    assert list(traj[traj["value"] == "power"]["x"]) == [2, 4] and set(traj["axis"]) == {"k"}
    tau = pd.read_csv(tmp_path / "report" / "tax_matrix.csv")
    assert len(tau) == 18 and "power" not in set(tau[tau["target"] == "power"]["of_value"])
    assert (tmp_path / "report" / "tax_matrix_m_prompting_likelihood.png").is_file()
    # each tau carries its cell's Holm-adjusted p (the heatmap's significance marks)
    res = json.loads((tmp_path / "value=power" / "likelihood" / "vat.json").read_text())["results"][
        -1
    ]
    row = tau[(tau["target"] == "power") & (tau["of_value"] == "security")].iloc[0]
    assert row["p_holm"] == pytest.approx(res["p_holm"]["security"])

    # null-corrected nVAT with its interval, each cell's own p, and BH across the sweep's cells
    from vat.metrics import benjamini_hochberg

    cols = ["nvat_offdiag_excess", "nvat_lo", "nvat_hi", "nvat_offdiag", "nvat_offdiag_null", "p_nvat",
            "p_gain", "gnd_l1_bc", "gnd_l1_null", "p_drift", "p_circumplex"]  # fmt: skip
    assert table[cols].notna().all().all()
    assert ((table["nvat_lo"] <= table["nvat_offdiag_excess"])
            & (table["nvat_offdiag_excess"] <= table["nvat_hi"])).all()  # fmt: skip
    for p in ("p_gain", "p_nvat", "p_drift", "p_circumplex"):
        assert np.allclose(table[f"{p}_bh"], benjamini_hochberg(table[p]))
    assert "Benjamini-Hochberg adjusted across the 2 cells of this sweep" in md
    assert "Holm-corrected within that comparison" in md
    assert "nVAT debiased [CI]" in md and "gain p (BH)" in md
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Benjamini-Hochberg" in html and "nVAT debiased [CI]" in html
    assert len(pd.read_parquet(tmp_path / "report" / "sweep_table.parquet")) == 2


def test_report_of_a_missing_dir_names_it(tmp_path):
    from vat.report.sweep import build_sweep_report

    with pytest.raises(FileNotFoundError, match="nope"):
        build_sweep_report(tmp_path / "nope")
