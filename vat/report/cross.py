"""Report section: other taxonomies measured beside the run, and the predictions fixed in advance."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vat.report.format import NA, finite, fmt, fmt_interval, fmt_p, label, md_table


def cross_section(cross: Mapping[str, Mapping[str, Any]],
                  predictions: Mapping[str, Mapping[str, Any]]) -> list[str]:  # fmt: skip
    """``cross``: taxonomy -> `CrossShift.to_dict`; ``predictions``: measured taxonomy ->
    `PredictionTest` as a dict (`vat.measure.predict`). Empty when there is neither."""
    if not cross and not predictions:
        return []
    out = ["## Structure beyond the target: other value systems and the predictions", ""]
    for tax, c in cross.items():
        pct = f"{round(100 * float(c['ci']))} %"
        out += [f"**{tax}** ({c['n_scenes']} held-out scenes shared with the run): the shift of "
                f"each of its values, post minus pre, with {pct} bootstrap-t intervals; Holm p "
                "across its values.", ""]  # fmt: skip
        rows = [[label(v), fmt(c["shift"][v]), fmt_interval((c["shift_lo"][v], c["shift_hi"][v])),
                 fmt_p(c["p_holm"][v])] for v in c["values"]]  # fmt: skip
        out += [*md_table(["value", "shift", "interval", "Holm p"], rows), ""]
        strongest = _strongest_links(c)
        if strongest:
            out += ["Strongest scene-level links between the run's values and these (Spearman "
                    "over scenes of the two shifts; uncorrected p, among " + str(len(c["own_values"]) * len(c["values"])) + " pairs): " + "; ".join(strongest) + ".", ""]  # fmt: skip
    for tax, p in predictions.items():
        out += [f"**Prediction for {tax}** ({p['prediction']}, fixed before the run): agreement "
                f"{fmt(p['statistic'])} ({p['method']}), label-permutation p = "
                f"{fmt_p(p['p_value'])} over {p['n_perm']} relabelings (smallest attainable "
                f"{fmt_p(p['min_p'])}); structure test p = {fmt_p(p['structure_p'])}. "
                f"**Verdict: {p['verdict']}.**", ""]  # fmt: skip
    return out


def _strongest_links(c: Mapping[str, Any], k: int = 3) -> list[str]:
    cells = [(abs(r), r, u, v, c["coupling_p"][i][j])
             for i, u in enumerate(c["own_values"]) for j, v in enumerate(c["values"])
             if finite(r := c["coupling"][i][j])]  # fmt: skip
    cells.sort(key=lambda x: -x[0])
    return [
        f"{label(u)} ~ {label(v)} {fmt(r, 2)} (p {fmt_p(p) if finite(p) else NA})"
        for _, r, u, v, p in cells[:k]
    ]


def falsification_section(sweep_dir, out, nets: list, ci: float, n_boot: int) -> list[str]:
    """Sweep report: per real arm with a placebo, the predictions' verdicts net of the placebo over
    seeds, with the design's minimum detectable effects (`vat.measure.falsify`); ``nets``: the
    (real arm, placebo arm, NetOfPlacebo) triples of `vat.measure.arms.analyse`. Writes
    ``falsification.json``. Empty when no cell stated a prediction."""
    import json

    from vat.measure.falsify import falsification_rows
    from vat.metrics import to_jsonable

    rows = falsification_rows(sweep_dir, nets, ci=ci, n_boot=n_boot)
    if not rows:
        return []
    body_json = json.dumps(to_jsonable(rows), indent=2, allow_nan=False)
    (Path(out) / "falsification.json").write_text(body_json)
    lines = ["## Does the tax have structure? The predictions, net of the placebo", "",
             "Per arm, over its seeds: the off-target profile (mean shift per value) of the run's "
             "own values and of each taxonomy measured beside it, minus the placebo arm's, "
             "against the prediction fixed before the run (agreement: centred cosine; p: value "
             "labels permuted). Structure test without the prediction: some value moved beyond "
             "the placebo (smallest Holm p, two-level bootstrap over seeds and scenes). MDE: the "
             "smallest effect this design detects with 80 % power, simulated from its own noise "
             "(gain in score units; GND per unit gain; nVAT a correlation; prediction: the SD of "
             "the planted profile in score units). Data: `falsification.json`.", ""]  # fmt: skip
    body = []
    for r in rows:
        for tax, v in r["verdicts"].items():
            t, m = v["test"], v["mde"]
            body.append([label(r["target"]), f"{r['method']} - {r['placebo']}", r["probe"],
                         f"{tax} ({v['prediction']})",
                         f"{fmt(t['gain'])} {fmt_interval(t['gain_ci'])}",
                         f"{fmt(t['statistic_net'])} (p {fmt_p(t['p_value_net'])}; min "
                         f"{fmt_p(t['min_p'])})", fmt_p(t["structure_p"]), f"**{t['verdict']}**",
                         ", ".join(f"{k} {fmt(x)}" for k, x in m.items())])  # fmt: skip
    header = ["target", "arm", "probe", "measured (prediction)", "gain [CI]",
              "agreement net of placebo", "structure p", "verdict", "MDE (80 % power)"]  # fmt: skip
    return [*lines, *md_table(header, body), ""]
