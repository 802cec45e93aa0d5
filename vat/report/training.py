"""The final report of a training run: per probe, the measurement report at the last checkpoint,
the VAT curve over steps and its stability profile, and the run's ``report.md``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from omegaconf import DictConfig

from vat.metrics import to_jsonable


def checkpoint_stability(out: Path, probe: str, rows: list[dict], pre, target: str):
    """The stability profile over the checkpoints (steps > 0) of one probe's curve, with its noise
    reference from the saved per-step item scores; None with fewer than two checkpoints."""
    from vat.callbacks.vat import state_dir
    from vat.metrics import stability
    from vat.probes.base import ProbeResult

    pts = [r for r in rows if r["step"] > 0 and state_dir(out, r["step"], probe).is_dir()]
    if len(pts) < 2:
        return None
    scenes, names, S0 = pre.state("value")
    t = names.index(target)
    shifts = [ProbeResult.load(state_dir(out, r["step"], probe)).state("value", scenes)[2][:, t]
              - S0[:, t] for r in pts]  # fmt: skip
    num = lambda x: float("nan") if x is None else float(x)  # noqa: E731
    return stability([r["step"] for r in pts], [num(r["gain"]) for r in pts],
                     [num(r.get("gnd_l1_bc")) for r in pts],
                     [num(r.get("nvat_offdiag_excess")) for r in pts],
                     gain_ci=[(num(r["gain_lo"]), num(r["gain_hi"])) for r in pts],
                     target_shifts=shifts)  # fmt: skip


def final_report(out: Path, cb, summary: dict, cfg: DictConfig) -> dict:
    """Per probe: the measurement report at the last step, plus the curve figure over steps."""
    from vat.io import read_curve
    from vat.measure import robustness_payload
    from vat.measure.predict import predictions_for
    from vat.metrics.fields import SWEEP, flat_row
    from vat.probes.base import validity
    from vat.probes.checks import probe_agreement, probe_checks
    from vat.report import make_figures, plot_curve, write_report
    from vat.report.checks import checks_lines, robustness_lines
    from vat.report.cross import cross_section
    from vat.report.headline import interpretation
    from vat.results import write_final

    rows, _ = read_curve(cb.curve_path)
    final = {}
    checks = {n: probe_checks(cb.pre[n], cb.last_post[n]) for n in cb.last if n in cb.last_post}
    pair = [n for n in ("judgment", "likelihood") if n in checks]
    agreement = (probe_agreement(*((cb.pre[n], cb.last_post[n]) for n in pair))
                 if len(pair) == 2 else None)  # fmt: skip
    summary["probe_checks"] = {"per_probe": checks, "agreement": agreement}
    check_md = checks_lines(checks, agreement)
    taxonomy = next(iter(cb.pre.values())).taxonomy
    lines = [f"# VAT run: {cfg.method.name} toward {taxonomy.label_of(summary['target'])} "
             f"({taxonomy.label})", "",
             f"Model `{cfg.model.name}`, {summary['data']['n_train_pairs_target']} training pairs, "
             f"{summary['data']['n_heldout_scenes']} held-out scenes.", ""]  # fmt: skip
    if "value_gap" in summary:
        g = summary["value_gap"]
        lines += ["## Value-gap check (before training)", "",
                  f"Reference margin log p(chosen) - log p(rejected): mean {g['margin_mean']:.3f} "
                  f"(sd {g['margin_std']:.3f}); chosen already preferred in "
                  f"{g['share_chosen_preferred']:.0%} of {g['n_pairs']} pairs.",
                  f"**Warning:** {g['warning']}." if g["warning"] else "No warning.", ""]  # fmt: skip
    for name, (step, res) in cb.last.items():
        d = out / f"report_{name}"
        figs = make_figures(res, d)
        cross = {tax: c.to_dict() for tax, c in cb.last_cross.get(name, {}).items()}
        preds = predictions_for(res, taxonomy, cb.last_cross.get(name, {}), cfg.prediction)
        write_final(d, name, step, {**res.to_dict(), "cross": cross, "predictions": preds})
        figs["curve"] = plot_curve(
            [r for r in rows if r["probe"] == name], d / "curve.png", probe=name
        )
        valid = validity(cb.pre[name])
        stab = checkpoint_stability(out, name, [r for r in rows if r["probe"] == name],
                                    cb.pre[name], summary["target"])  # fmt: skip
        if stab is not None:
            summary.setdefault("stability", {})[name] = to_jsonable(asdict(stab))
        rob = (robustness_payload(cb.pre[name], cb.last_post[name], summary["target"], res,
                                  cfg.metrics) if name in cb.last_post else None)  # fmt: skip
        if rob is not None:
            summary.setdefault("robustness", {})[name] = rob["agreement"]
            (d / "robustness.json").write_text(json.dumps(rob, indent=2, allow_nan=False))
        extra = (checks_lines({name: checks[name]}) if name in checks else []) + robustness_lines(
            rob
        )
        write_report(d, result=res, validity=valid, model=cfg.model.name,
                     probe=name, intervention=f"{cfg.method.name} (step {step})", figures=figs,
                     post_checks=extra + cross_section(cross, preds), stability=stab,
                     stability_axis="training step")  # fmt: skip
        final[name] = {"step": step, **flat_row(res.to_dict(), SWEEP),
                       "predictions": {t: p["verdict"] for t, p in preds.items()}}  # fmt: skip
        near = list(valid.value[valid.near_chance])
        seen = (f"Probe validity: near chance for {len(near)} of {len(valid)} values ({', '.join(near)}); "
                "their numbers measure noise." if near else "Probe validity: every value is seen.")  # fmt: skip
        lines += [f"## Probe `{name}` at step {step}", "", seen, "", interpretation(res), "",
                  f"![VAT curve]({d.name}/curve.png)", "", f"Full report: [{d.name}/report.md]({d.name}/report.md)", ""]  # fmt: skip
    lines += check_md
    (out / "report.md").write_text("\n".join(lines))
    return final
