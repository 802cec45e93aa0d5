"""`MetricsSettings`: the settings of `vat.metrics.compute_vat` in one dataclass that checks itself.

The one home of their defaults, options and ranges: `compute_vat` builds it from its keyword
arguments, the config schema `vat.config.MetricsConfig` extends it (so ``metrics.coupling_method=
pearson`` fails when Hydra composes the config), and `vat.preflight` builds it from the ``metrics``
node before anything loads (so ``metrics.ci=95`` fails there, naming ``metrics.ci``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from vat.metrics._common import (
    CI,
    DEFAULT_MIN_OVERLAP,
    EPS,
    HUB_K,
    MIN_OVERLAP,
    RESAMPLES,
    SUBSAMPLE_FRAC,
    BootstrapScheme,
    CouplingMethod,
    EpsUnits,
)
from vat.settings import Rule, Settings

#: `compute_vat`'s default eps: 1 % of the pre state's scene standard deviation.
DEFAULT_EPS_SD = 0.01


@dataclass
class MetricsSettings(Settings):
    """How `compute_vat` measures (vat-spec section 4).

    ``eps`` is the smallest |gain| (in ``eps_units``: ``pre_sd``, a share of the pre state's scene
    SD, or ``score``, probe units) below which ratios are NaN; ``coupling_method`` spearman or
    kendall; ``min_overlap`` the fewest shared scenes for a correlation to enter R; ``n_bootstrap``
    scene resamples for the tests and intervals and ``bootstrap_scheme`` bootstrap or subsample
    (the paper's rescaled ``subsample_frac`` subsamples) for the GND/nVAT intervals; ``ci`` the
    interval level; ``n_permutations`` for the coupling nulls and the structure tests; ``hub_k``
    hubs reported; ``seed`` of every random stream. 0 resamples or permutations skip them."""

    eps: float = DEFAULT_EPS_SD
    eps_units: EpsUnits = EpsUnits.pre_sd
    coupling_method: CouplingMethod = CouplingMethod.spearman
    min_overlap: int = DEFAULT_MIN_OVERLAP
    n_bootstrap: int = 1000
    bootstrap_scheme: BootstrapScheme = BootstrapScheme.bootstrap
    subsample_frac: float = 0.8
    ci: float = 0.95
    n_permutations: int = 1000
    hub_k: int = 3
    seed: int | None = 0

    RULES: ClassVar[dict[str, Rule]] = {
        "eps": EPS,
        "min_overlap": MIN_OVERLAP,
        "n_bootstrap": RESAMPLES,
        "subsample_frac": SUBSAMPLE_FRAC,
        "ci": CI,
        "n_permutations": RESAMPLES,
        "hub_k": HUB_K,
    }

    def kwargs(self) -> dict[str, Any]:
        """The settings as `compute_vat`'s keyword arguments, choices as plain strings."""
        return {k: str(v) if isinstance(v, str) else v for k, v in asdict(self).items()}
