"""A sweep's arms, and the analyses of them the sweep report renders: cells that differ only by ``seed``, with their item scores as shift matrices.

An **arm** is one intervention (model x target x method x its other settings) run with several
training seeds. `collect_arms` groups a sweep's finished cells into arms, per probe, and reads each
cell's item scores at its last point into a shift matrix D[scene, value] (`shift_matrix`), which
the controls (`vat.report.controls`) and the tax-aware frontier (`vat.report.frontier`) analyse.

A cell's item scores: ``states_pre_<probe>/`` and the last ``states/step*_<probe>/`` (sft, dpo),
``<probe>/states_pre/`` and the strongest ``<probe>/states_post*/`` (method=prompting), or
``states_pre/`` and the strongest ``states_post*/`` (an ``evaluate.py`` cell).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from vat.metrics.over_targets import aggregate_over_targets
from vat.metrics.regression import referee_regression, register_covariates
from vat.metrics.repeats import net_of_placebo, stack_runs, summarize_arm
from vat.probes.base import ProbeResult
from vat.results import FINISHED, cell_config, cell_meta, cell_states

log = logging.getLogger(__name__)


def shift_matrix(pre: ProbeResult, post: ProbeResult) -> tuple[list[str], list[str], np.ndarray]:
    """(scenes, values, D = S_post - S_pre) at the basic-value level, rows paired by scene."""
    scenes, values, S_pre = pre.state("value")
    _, _, S_post = post.state("value", scenes)
    return scenes, values, S_post - S_pre


def _mass_change(pre: ProbeResult, post: ProbeResult, scenes, values) -> np.ndarray | None:
    """(scenes, values) change of the judgment probe's option-token mass, mean over the items."""
    if "option_mass" not in pre.items or "option_mass" not in post.items:
        return None
    key = ["scene_id", "value"]
    a = pre.items.groupby(key)["option_mass"].mean()
    b = post.items.groupby(key)["option_mass"].mean()
    d = (b - a).unstack("value").reindex(index=scenes, columns=values)
    return d.to_numpy(float)


def _control_of(cfg) -> str | None:
    """The method a cell's placebo controls for: ``method.control_of`` (train.py), or
    ``prompting`` for an evaluate.py cell with ``intervention.placebo=true``."""
    named = OmegaConf.select(cfg, "method.control_of", default=None)
    if named:
        return str(named)
    if OmegaConf.select(cfg, "method", default=None) is None and OmegaConf.select(
        cfg, "intervention.placebo", default=False
    ):
        return "prompting"
    return None


def anchor_setting(cfg) -> tuple[float, str | None]:
    """(lambda, anchor penalty name) of a cell's method: (0, None) for anything but tax-aware DPO."""
    if not OmegaConf.select(cfg, "method.anchor_per_pair", default=0):
        return 0.0, None
    fn = str(OmegaConf.select(cfg, "method.module.anchor._target_", default="") or "")
    return float(OmegaConf.select(cfg, "method.module.anchor_weight", default=0.0)), fn.rsplit(
        ".", 1
    )[-1]


def _arm_key(meta: dict, overrides: list[str], cfg=None) -> tuple:
    # ``+arm=`` (experiment=tax_aware) picks a method and its settings: the arm is named by those,
    # so that a placebo arm pairs with its real one and two lambdas stay apart.
    rest = [o for o in overrides if not o.startswith(("seed=", "method=", "value=", "model=",
            "intervention=", "intervention.placebo=", "+arm=", "arm=", "experiment="))]  # fmt: skip
    lam, fn = anchor_setting(cfg) if cfg is not None else (0.0, None)
    if fn is not None and not any(o.startswith("method.module.anchor_weight=") for o in rest):
        rest.append(f"lambda={lam:g}")
    return (meta["model"], meta["value"], meta["method"], tuple(sorted(rest)))


def collect_arms(sweep_dir: Path, cells: dict[str, dict]) -> list[dict]:
    """One entry per (arm, probe): the cells, their seeds, stacked D, covariates and clusters."""
    groups: dict[tuple, dict] = {}
    for name, c in cells.items():
        if c.get("status") not in FINISHED:
            continue
        cell_dir = sweep_dir / name
        cfg = cell_config(cell_dir)
        if cfg is None:
            continue
        meta = cell_meta(cell_dir, c.get("overrides") or [])
        states = cell_states(cell_dir)
        mass = None
        if "judgment" in states:
            pj, qj = (ProbeResult.load(p) for p in states["judgment"])
            mass = (pj, qj)
        for probe, (pre_dir, post_dir) in states.items():
            pre, post = ProbeResult.load(pre_dir), ProbeResult.load(post_dir)
            scenes, values, D = shift_matrix(pre, post)
            key = (*_arm_key(meta, c.get("overrides") or [], cfg), probe)
            g = groups.setdefault(key, {"model": meta["model"], "value": meta["value"],
                                        "method": meta["method"], "probe": probe, "settings": key[3],
                                        "control_of": _control_of(cfg),
                                        "anchor": anchor_setting(cfg),
                                        "runs": [], "mass": [], "seeds": [], "cells": [], "cfg": cfg})  # fmt: skip
            g["runs"].append((scenes, values, D))
            g["mass"].append(None if mass is None else _mass_change(*mass, scenes, values))
            g["seeds"].append(OmegaConf.select(cfg, "seed"))
            g["cells"].append(name)
    return list(groups.values())


def cross_runs(sweep_dir: Path, arm: dict, taxonomy: str, scenes: list[str]):
    """(seeds, scenes, values) shifts of another taxonomy measured beside an arm's cells
    (``measure=[...]``), on ``scenes`` in their order (NaN where a cell lacks one), and its
    values; None when a cell has none."""
    runs = []
    for cell in arm["cells"]:
        states = cell_states(Path(sweep_dir) / cell, cross=True).get(f"{arm['probe']}@{taxonomy}")
        if states is None:
            return None
        runs.append(shift_matrix(*(ProbeResult.load(p) for p in states)))
    D, sc, values = stack_runs(runs)
    pos = {s: i for i, s in enumerate(sc)}
    out = np.full((D.shape[0], len(scenes), D.shape[2]), np.nan)
    for j, s in enumerate(scenes):
        if s in pos:
            out[:, j] = D[:, pos[s]]
    return out, values


def on_scenes(arm: dict, scenes: list[str]) -> np.ndarray:
    """The arm's stacked D[seed, scene, value] (``arm["D"]``, set by `vat.report.controls.analyse`)
    on these of its scenes, in this order."""
    return arm["D"][:, [arm["scenes"].index(s) for s in scenes]]


def paired(a: dict, b: dict) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Both arms' D on the scenes they share (same held-out split: all of them), and those scenes."""
    shared = [s for s in a["scenes"] if s in set(b["scenes"])]
    return on_scenes(a, shared), on_scenes(b, shared), shared


# ---------------------------------------------------------------------------- analyses
def analyse(arms: list[dict], ci: float = 0.95, n_boot: int = 2000) -> dict[str, Any]:
    """repeats / net / regression tables (DataFrames) and per-arm result objects."""
    rep_rows, net_rows, reg_rows, nets, regs = [], [], [], [], []
    for a in arms:
        D, scenes, values = stack_runs(a["runs"])
        a["D"], a["scenes"], a["values"] = D, scenes, values
        s = summarize_arm(D, values, a["value"], n_boot=n_boot, ci=ci)
        a["summary"] = s
        rep_rows.append({
            "model": a["model"], "value": a["value"], "method": a["method"], "probe": a["probe"],
            "settings": " ".join(a["settings"]), "n_seeds": s.n_seeds,
            "seeds": ",".join(str(x) for x in a["seeds"]), "n_scenes": s.n_scenes,
            "gain": s.gain.value, "gain_lo": s.gain.lo, "gain_hi": s.gain.hi, "p_gain": s.gain.p,
            "gnd_l1": s.gnd["raw"], "gnd_l1_bc": s.gnd["bc"], "gnd_lo": s.gnd["lo"],
            "gnd_hi": s.gnd["hi"], "sd_gain_between_seeds": s.sd_gain,
            "sd_gnd_between_seeds": s.sd_gnd, "cells": ",".join(a["cells"]),
        })  # fmt: skip
    by_key = {(a["model"], a["value"], a["method"], a["probe"], a["settings"]): a for a in arms}
    for a in arms:
        if not a["control_of"]:
            continue
        real = by_key.get((a["model"], a["value"], a["control_of"], a["probe"], a["settings"]))
        if real is None:
            continue
        D_real, D_plac, scenes = paired(real, a)
        r = net_of_placebo(D_real, D_plac, real["values"], a["value"], n_boot=n_boot, ci=ci)
        nets.append((real, a, r))
        for v in real["values"]:
            e = r.net[v]
            net_rows.append({
                "model": a["model"], "target": a["value"], "method": real["method"],
                "placebo": a["method"], "probe": a["probe"], "value": v,
                "is_target": v == a["value"], "real": r.real.shift[v].value,
                "real_lo": r.real.shift[v].lo, "real_hi": r.real.shift[v].hi,
                "placebo_shift": r.placebo.shift[v].value, "placebo_lo": r.placebo.shift[v].lo,
                "placebo_hi": r.placebo.shift[v].hi, "net": e.value, "net_lo": e.lo,
                "net_hi": e.hi, "p_net": e.p, "p_net_holm": r.p_holm.get(v, np.nan),
                "n_seeds_real": r.real.n_seeds, "n_seeds_placebo": r.placebo.n_seeds,
                "n_scenes": len(scenes),
            })  # fmt: skip
    for a in arms:
        if a["control_of"]:
            continue
        reg = _regression(a, ci)
        if reg is None:
            continue
        regs.append((a, reg))
        for row in reg.table().to_dict(orient="records"):
            reg_rows.append({"model": a["model"], "target": a["value"], "method": a["method"],
                             "probe": a["probe"], **row})  # fmt: skip
    return {"repeats": pd.DataFrame(rep_rows), "net": pd.DataFrame(net_rows),
            "regression": pd.DataFrame(reg_rows), "nets": nets, "regs": regs,
            "over_targets": _over_targets(arms, ci, n_boot)}  # fmt: skip


def _over_targets(arms: list[dict], ci: float, n_boot: int) -> pd.DataFrame:
    """Per model x method x probe (x other settings) with 2+ targets: the mean tax over them."""
    groups: dict[tuple, list[dict]] = {}
    for a in arms:
        groups.setdefault((a["model"], a["method"], a["probe"], a["settings"]), []).append(a)
    rows = []
    for (model, method, probe, _), g in groups.items():
        if len({a["value"] for a in g}) < 2:
            continue
        shared = sorted(set.intersection(*(set(a["scenes"]) for a in g)))
        arms_t = [(a["value"], on_scenes(a, shared)) for a in g]
        agg = aggregate_over_targets(arms_t, g[0]["values"], n_boot=n_boot, ci=ci)
        rows.append({"model": model, "method": method, "probe": probe, "n_targets": len(g),
                     "targets": ",".join(agg.targets), "gnd_l1": agg.gnd["raw"],
                     "gnd_l1_bc": agg.gnd["bc"], "gnd_lo": agg.gnd["lo"], "gnd_hi": agg.gnd["hi"],
                     "nvat_excess": agg.nvat["value"], "nvat_lo": agg.nvat["lo"],
                     "nvat_hi": agg.nvat["hi"], "nvat_offdiag": agg.nvat["raw"]})  # fmt: skip
    return pd.DataFrame(rows)


_ITEMS: dict[str, Any] = {}


def _heldout(cfg):
    """The held-out items of a cell's data config, in its taxonomy (a cell saved before taxonomies
    were objects: the default one); loaded once per distinct config."""
    from hydra.utils import instantiate

    from vat.taxonomy import load_taxonomy

    tax_cfg = cfg.get("taxonomy")
    key = OmegaConf.to_yaml(cfg.data) + OmegaConf.to_yaml(tax_cfg or {})
    if key not in _ITEMS:
        taxonomy = instantiate(tax_cfg) if tax_cfg is not None else load_taxonomy()
        load = instantiate(cfg.data, _partial_=True, _convert_="all")
        _ITEMS[key] = load(taxonomy=taxonomy).heldout()
    return _ITEMS[key]


def _regression(a: dict, ci: float):
    try:
        held = _heldout(a["cfg"])
    except Exception as e:  # the data are not where the cell found them: say so, skip
        log.warning("referee regression for %s skipped: could not load its data (%s)",
                    a["cells"][0], e)  # fmt: skip
        return None
    scenes, values = a["scenes"], a["values"]
    cov = register_covariates(held, scenes, values)
    masses = a["mass"]
    if all(m is not None for m in masses):
        aligned = []
        for (sc, _, _), m in zip(a["runs"], masses, strict=True):
            full = np.full((len(scenes), len(values)), np.nan)
            full[[scenes.index(s) for s in sc]] = m
            aligned.append(full)
        cov["mass_change"] = np.stack(aligned)
    place = {it.scene_id: f"{it.country}|{it.domain}" for it in held}
    clusters = [place.get(s, s) for s in scenes]
    return referee_regression(a["D"], values, a["value"], clusters, covariates=cov, ci=ci)
