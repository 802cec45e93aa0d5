"""Probe checks after the intervention: is the probe still measuring what it measured before?

Probe validity (`vat.probes.base.validity`) is checked on the base model. An intervention can break
a probe: a fine-tuned model may stop answering the rating question with a digit (the judgment
probe then reads its ratings from the tail of the distribution), or answer the two scale orders
differently (a response-set or position effect, not a value), or the two probes may stop agreeing.
`probe_checks` compares pre and post on one probe; `probe_agreement` compares two probes.

- **pair accuracy**: share of held-out (express, suppress) pairs ranked the right way, pre and post;
- **option mass** (judgment): mean probability on the K option tokens, pre and post;
- **order gap** (judgment with both scale orders): mean |rating(forward) - rating(reverse)| over
  items, pre and post (0 for a model that reads the scale the same both ways);
- **agreement** (two probes): Spearman correlation over pairs of the two probes' express-minus-
  suppress margins, pre and post, and over values of their mean shifts.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

from vat.probes.base import ProbeResult


def _accuracy(r: ProbeResult) -> float:
    pairs = r.pairs()
    return float(pairs["correct"].mean()) if len(pairs) else float("nan")


def _col_mean(r: ProbeResult, col: str) -> float | None:
    return float(r.items[col].mean()) if col in r.items else None


def _order_gap(r: ProbeResult) -> float | None:
    if not {"rating_forward", "rating_reverse"} <= set(r.items):
        return None
    return float((r.items["rating_forward"] - r.items["rating_reverse"]).abs().mean())


def probe_checks(pre: ProbeResult, post: ProbeResult) -> dict[str, Any]:
    """Pair accuracy, option mass and order gap of one probe before and after (None: n/a)."""
    out: dict[str, Any] = {
        "pair_accuracy_pre": _accuracy(pre),
        "pair_accuracy_post": _accuracy(post),
        "option_mass_pre": _col_mean(pre, "option_mass"),
        "option_mass_post": _col_mean(post, "option_mass"),
        "order_gap_pre": _order_gap(pre),
        "order_gap_post": _order_gap(post),
    }
    acc = []
    pp, qq = pre.pairs(), post.pairs()
    for v in sorted(set(pp["value"])):
        acc.append({"value": v, "pre": float(pp[pp.value == v]["correct"].mean()),
                    "post": float(qq[qq.value == v]["correct"].mean()) if (qq.value == v).any() else None})  # fmt: skip
    out["pair_accuracy_by_value"] = acc
    return out


def _margins(r: ProbeResult):
    p = r.pairs()
    return (
        p.set_index(["scene_id", "micro_value"])["express"]
        - p.set_index(["scene_id", "micro_value"])["suppress"]
    )


def _spearman(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def probe_agreement(
    a: tuple[ProbeResult, ProbeResult], b: tuple[ProbeResult, ProbeResult]
) -> dict[str, float]:
    """Spearman agreement of two probes' (pre, post) results: per-pair margins pre and post, and
    the per-value mean shifts (pre -> post)."""
    out = {}
    for i, when in enumerate(("pre", "post")):
        ma, mb = _margins(a[i]), _margins(b[i])
        ma, mb = ma.align(mb, join="inner")
        out[f"margins_{when}"] = _spearman(ma.to_numpy(float), mb.to_numpy(float))
    shifts = []
    for pre, post in (a, b):
        scenes, _, S0 = pre.state("value")
        _, _, S1 = post.state("value", scenes)
        with warnings.catch_warnings():  # a value without held-out data: NaN, said by the result
            warnings.simplefilter("ignore", RuntimeWarning)
            shifts.append(np.nanmean(S1 - S0, axis=0))
    out["value_shifts"] = _spearman(shifts[0], shifts[1])
    return out
