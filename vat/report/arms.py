"""A sweep's arms: cells that differ only by ``seed``, with their item scores as shift matrices.

An **arm** is one intervention (model x target x method x its other settings) run with several
training seeds. `collect_arms` groups a sweep's finished cells into arms, per probe, and reads each
cell's item scores at its last point into a shift matrix D[scene, value] (`shift_matrix`), which
the controls (`vat.report.controls`) and the tax-aware frontier (`vat.report.frontier`) analyse.

A cell's item scores: ``states_pre_<probe>/`` and the last ``states/step*_<probe>/`` (sft, dpo),
``<probe>/states_pre/`` and the strongest ``<probe>/states_post*/`` (method=prompting), or
``states_pre/`` and the strongest ``states_post*/`` (an ``evaluate.py`` cell).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from vat.metrics.repeats import stack_runs
from vat.probes.base import ProbeResult
from vat.report.sweep_cells import FINISHED, cell_config, cell_meta
from vat.results import cell_states


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
