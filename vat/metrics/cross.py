"""Cross-taxonomy measurement: how a second value system moved, scene by scene with the first.

A run aligned toward a value of one taxonomy (Schwartz's benevolence) is also probed on held-out
items of another (the six moral foundations) written on the *same scenes*. For the other
taxonomy there is no target, so no gain and no ratio: each of its values gets its mean shift with
a bootstrap-t interval and p (Holm across its values), as `compute_vat` gives every value's
shift. And because both shift matrices are indexed by the same scenes, their **cross-coupling**
``C[u, v] = Spearman over scenes of D_own[:, u] and D_other[:, v]`` (own values x other values:
10 x 6) is the scene-level counterpart of the survey literature's values-foundations
correlations, each entry with its two-sided p (and NaN below ``min_overlap`` shared scenes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from vat.metrics.coupling import coupling, overlap
from vat.metrics.inference import first_order_inference
from vat.metrics.nulls import correlation_p_values
from vat.metrics.record import to_jsonable
from vat.metrics.resampling import holm, resample_weights


@dataclass(frozen=True)
class CrossShift:
    """The shift of every value of another taxonomy, and its scene-level coupling with the run's."""

    taxonomy: str
    values: tuple[str, ...]
    n_scenes: int
    shift: dict[str, float]
    shift_lo: dict[str, float]
    shift_hi: dict[str, float]
    p: dict[str, float]  # bootstrap-t p of mean shift = 0
    p_holm: dict[str, float]  # Holm across this taxonomy's values
    own_values: tuple[str, ...]
    coupling: tuple[tuple[float, ...], ...]  # own values (rows) x these values (columns)
    coupling_p: tuple[tuple[float, ...], ...]
    ci: float
    n_bootstrap: int

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))


def cross_shift(
    D_own: Any,
    own_values: Sequence[str],
    D_other: Any,
    other_values: Sequence[str],
    *,
    taxonomy: str,
    ci: float = 0.95,
    n_bootstrap: int = 1000,
    min_overlap: int = 8,
    coupling_method: str = "spearman",
    seed: int | None = 0,
) -> CrossShift:
    """``D_own`` (scenes x own values) and ``D_other`` (the same scenes x other values): shifts,
    post minus pre, rows paired by scene. NaN where a scene lacks a value."""
    A, B = np.asarray(D_own, float), np.asarray(D_other, float)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"shift matrices must share their scene rows, got {A.shape} and {B.shape}")
    if A.shape[1] != len(own_values) or B.shape[1] != len(other_values):
        raise ValueError("one name per column of each shift matrix")
    n = B.shape[0]
    W, _ = resample_weights(n, int(n_bootstrap) if n else 0, np.random.default_rng(seed))
    with np.errstate(invalid="ignore", divide="ignore"):  # its tax ratios (over column 0) unused
        fo = first_order_inference(B, 0, W, ci=ci, eps=0.0)  # no target here: t=0 is arbitrary
    p = np.asarray(fo.p, float)
    names = tuple(str(v) for v in other_values)
    per = lambda x: {v: float(a) for v, a in zip(names, x, strict=True)}  # noqa: E731
    both = np.hstack([A, B])
    R = coupling(both, coupling_method, min_overlap)
    P = correlation_p_values(R, overlap(both), coupling_method)
    own = A.shape[1]
    return CrossShift(
        taxonomy=taxonomy, values=names, n_scenes=int(n), shift=per(fo.mean),
        shift_lo=per(fo.mean_ci[:, 0]), shift_hi=per(fo.mean_ci[:, 1]), p=per(p),
        p_holm=per(holm(p)), own_values=tuple(str(v) for v in own_values),
        coupling=tuple(tuple(float(x) for x in row) for row in R[:own, own:]),
        coupling_p=tuple(tuple(float(x) for x in row) for row in P[:own, own:]),
        ci=float(ci), n_bootstrap=int(W.shape[0]),
    )  # fmt: skip


def paired_shifts(pre_own, post_own, pre_other, post_other):
    """(scenes, own names, D_own, other names, D_other) on the scenes both taxonomies' held-out
    items share, from four `vat.probes.base.ProbeResult` (pre and post of each taxonomy)."""
    scenes_o, own, S0 = pre_own.state("value")
    scenes_x, other, X0 = pre_other.state("value")
    shared = [s for s in scenes_o if s in set(scenes_x)]
    if not shared:
        raise ValueError(f"the held-out items of {pre_own.taxonomy.name} and "
                         f"{pre_other.taxonomy.name} share no scene: nothing to pair")  # fmt: skip
    _, _, S0 = pre_own.state("value", shared)
    _, _, S1 = post_own.state("value", shared)
    _, _, X0 = pre_other.state("value", shared)
    _, _, X1 = post_other.state("value", shared)
    return shared, own, S1 - S0, other, X1 - X0
