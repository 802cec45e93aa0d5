"""Robustness of a VAT result: the micro level (56 micro-values) and Kendall's tau for coupling.

The paper's robustness appendix asks whether conclusions drawn on the ten basic values survive
at the level of the 56 micro-values, and with Kendall's tau instead of Spearman's rho. Here:

- **Micro level** (`micro_level_vat`): the target is the target value's micro-values taken
  together (one column, their per-scene mean), and their *siblings* are not part of the tax (they
  are the target); the other micro-values (46 of 56) each get a shift, a tax and a place in the
  coupling matrix, whose correlations need `min_overlap` shared scenes like any other (on a small
  held-out set most micro-value pairs share too few scenes, and the micro nVAT is then undefined
  rather than noise).
- **Agreement** (`robustness`): Spearman correlation of the basic-level tau vector with the
  micro-level tau aggregated to basic values (mean over each value's micro-values), the two GNDs
  side by side, and Spearman's correlation between the Spearman and the Kendall coupling matrices'
  off-diagonal entries, with both nVATs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from vat.metrics.record import VATResult
from vat.metrics.result import compute_vat
from vat.taxonomy import Taxonomy


def merge_target_micro(
    S: np.ndarray, micro_names, target: str, taxonomy: Taxonomy
) -> tuple[np.ndarray, list[str], str]:
    """(scenes, micro) state -> the target's micro-values merged into one column (their
    row-wise mean, first), then the non-sibling micro-values; returns (S', names', column name).

    The merged column is named by the target's first micro-value (so that the taxonomy, and the
    circumplex angle of its parent value, still apply); `micro_level_vat` says which it stands for.
    """
    target = taxonomy.normalize_value(target)
    names = list(micro_names)
    sib = [i for i, m in enumerate(names) if taxonomy.value_of(m) == target]
    if not sib:
        raise ValueError(f"no micro-value of {target!r} among the columns")
    rest = [i for i in range(len(names)) if i not in sib]
    S = np.asarray(S, float)
    with warnings.catch_warnings():  # a scene with none of the target's micro-values: NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        merged = np.nanmean(S[:, sib], axis=1)
    out = np.column_stack([merged, S[:, rest]])
    return out, [names[sib[0]]] + [names[i] for i in rest], names[sib[0]]


def micro_level_vat(S_pre_micro, S_post_micro, target: str, taxonomy: Taxonomy,
                    micro_names=None, **metrics: Any) -> VATResult:  # fmt: skip
    """`compute_vat` at the micro level with the target's micro-values merged (see the module)."""
    micro_names = taxonomy.micro_names if micro_names is None else micro_names
    pre, names, col = merge_target_micro(S_pre_micro, micro_names, target, taxonomy)
    post, _, _ = merge_target_micro(S_post_micro, micro_names, target, taxonomy)
    return compute_vat(pre, post, col, taxonomy, names, **metrics)


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(a[ok], b[ok]).statistic)


def robustness(basic: VATResult, micro: VATResult | None, kendall: VATResult | None,
               taxonomy: Taxonomy) -> dict:  # fmt: skip
    """Agreement numbers of a basic-level result with its micro-level and Kendall variants."""
    out: dict[str, Any] = {"gnd_basic": basic.gnd_l1_bc, "nvat_spearman": basic.nvat_offdiag_excess}
    others = [v for v in taxonomy.value_names if v != basic.target]
    if micro is not None:
        tau_m = micro.tau
        agg = {v: np.nanmean([tau_m.get(m, np.nan) for m in taxonomy.micro_values_of(v)] or [np.nan])
               for v in others}  # fmt: skip
        out.update({
            "tau_rank_corr_basic_micro": _spearman([basic.tau.get(v) for v in others],
                                                   [agg[v] for v in others]),
            "gnd_micro": micro.gnd_l1_bc, "gain_micro": micro.gain, "gain_basic": basic.gain,
            "n_pairs_nvat_micro": micro.n_pairs_nvat, "nvat_micro": micro.nvat_offdiag_excess,
            "n_values_micro": len(micro.values) - 1,
        })  # fmt: skip
    if kendall is not None:
        iu = np.triu_indices(len(basic.values), 1)
        out.update({
            "R_rank_corr_spearman_kendall": _spearman(np.asarray(basic.R)[iu], np.asarray(kendall.R)[iu]),
            "nvat_kendall": kendall.nvat_offdiag_excess,
        })  # fmt: skip
    return out


def robustness_checks(pre, post, target: str, basic: VATResult, metrics: Mapping[str, Any],
                      taxonomy: Taxonomy, kendall_permutations: int = 200) -> dict:  # fmt: skip
    """Micro-level and Kendall variants of `basic` for one (pre, post) pair of `ProbeResult`s."""
    m = dict(metrics)
    scenes, micro_names, P = pre.state("micro")
    _, _, Q = post.state("micro", scenes)
    micro = micro_level_vat(P, Q, target, taxonomy, micro_names, **m)
    _, names, P10 = pre.state("value")
    _, _, Q10 = post.state("value", scenes)
    mk = {**m, "coupling_method": "kendall", "n_bootstrap": 0,
          "n_permutations": min(int(m.get("n_permutations", 1000)), kendall_permutations)}  # fmt: skip
    kendall = compute_vat(P10, Q10, target, taxonomy, names, **mk)
    return {
        "micro": micro,
        "kendall": kendall,
        "agreement": robustness(basic, micro, kendall, taxonomy),
    }
