"""Value Alignment Tax metrics: from paired pre/post value states to gain, tax, drift and coupling.

Everything here works on *state matrices*: ``S[x, v]`` is the probe's score for value ``v`` in scene
``x`` (one row per scene, one column per value; 10 basic values or 56 micro-values). ``S_pre`` is the
model before an intervention aimed at a target value ``t``, ``S_post`` after it; rows are paired by
scene. The metrics are in the probe's own score units unless stated otherwise (ratios such as the
tax and GND are unit-free, correlations lie in [-1, 1]).

Where each part lives:

- `first_order`: shift ``D = S_post - S_pre``, gain ``G``, tax ``tau_v``, GND, micro -> basic
  aggregation, the stability profile of a trajectory;
- `coupling`: the coupling matrix ``R``, nVAT, hubs, circumplex consistency;
- `inference`: calibrated first-order tests and intervals (bootstrap-t, Fieller, d_z, GND's
  noise floor, unevenness);
- `nulls`: the permutation nulls of the second-order quantities (and the Mantel test);
- `resampling`: scene resampling (bootstrap, rescaled subsample), sign-flip test, Holm, BH;
- `result`: `compute_vat`, which bundles everything into a `VATResult` (`record`: the
  serialisable result and its strict-JSON round trip);
- `repeats`, `frontier`, `over_targets`: several seeds, a placebo, arm against arm, the mean
  over targets.

Missing data policy: a non-finite cell (NaN, or +-inf) means "no item for this value in this scene";
it is skipped by every mean over scenes, and a correlation uses the scenes where both columns are
present (at least ``min_overlap`` of them). Undefined quantities come back as NaN (never an
exception, never a ``RuntimeWarning``) so that a training-time curve keeps logging; the only
infinities are the limits of an unbounded ratio interval.
"""

from vat.metrics._common import DEFAULT_EPS, DEFAULT_MIN_OVERLAP
from vat.metrics.coupling import (
    Hubs,
    _coupling_weighted,
    circumplex_consistency,
    coupling,
    hubs,
    nvat_offdiag,
    nvat_paper,
    overlap,
)
from vat.metrics.first_order import (
    GND,
    StabilityProfile,
    gain,
    gnd,
    mean_shift,
    micro_to_basic_state,
    shift,
    stability,
    tax,
)
from vat.metrics.inference import FirstOrderInference, d_z_interval, fieller, first_order_inference
from vat.metrics.nulls import (
    CouplingNull,
    correlation_p_values,
    coupling_null,
    fisher_z_interval,
    mantel_circumplex,
)
from vat.metrics.record import VATResult, to_jsonable
from vat.metrics.resampling import (
    BootstrapIntervals,
    SignFlipResult,
    benjamini_hochberg,
    bootstrap,
    holm,
    sign_flip_test,
)
from vat.metrics.result import DEFAULT_EPS_SD, compute_vat, eps_threshold

__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_EPS_SD",
    "DEFAULT_MIN_OVERLAP",
    "GND",
    "BootstrapIntervals",
    "CouplingNull",
    "FirstOrderInference",
    "Hubs",
    "SignFlipResult",
    "StabilityProfile",
    "VATResult",
    "_coupling_weighted",
    "benjamini_hochberg",
    "bootstrap",
    "circumplex_consistency",
    "compute_vat",
    "correlation_p_values",
    "coupling",
    "coupling_null",
    "d_z_interval",
    "eps_threshold",
    "fieller",
    "first_order_inference",
    "fisher_z_interval",
    "gain",
    "gnd",
    "holm",
    "hubs",
    "mantel_circumplex",
    "mean_shift",
    "micro_to_basic_state",
    "nvat_offdiag",
    "nvat_paper",
    "overlap",
    "shift",
    "sign_flip_test",
    "stability",
    "tax",
    "to_jsonable",
]
