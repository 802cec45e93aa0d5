"""How many scenes and seeds do I need? Minimum detectable effects per design, before a GPU study.

For every (held-out scenes, seeds) design in the grid, the minimum detectable effect at 80 % power
(`vat.metrics.power.minimum_detectable_effect`, by simulation from the noise) of the gain (score
units), GND (ratio to |gain|), debiased nVAT (RMS off-diagonal Spearman) and the prediction test
(the SD across foundations of the predicted pattern, score units; Feldman 2021's row for the
target, by default benevolence). With ``--gnd X`` it also names the smallest design in the grid
that detects a GND of X.

The default noise is the bundled design as measured (README, `experiment=controls`:
SmolLM2-135M-Instruct, likelihood probe, 14 held-out scenes, 10 DPO steps toward benevolence,
3 seeds): gain 0.094 with interval [0.039, 0.150], so a scene SD of the shifts of about 0.10 score
units (nats), between-seed SD of the gain 0.010. ``--resid-share`` is the share of the scene
variance that differs between seeds on the same scene (it averages out over seeds); a single run
cannot tell it, so the default 0 assumes none (more seeds then buy little). ``--shifts`` reads
observed shifts instead, a ``.npy`` array (seeds, scenes, values) or (scenes, values), and
estimates every noise component from them (`vat.metrics.power.estimate_noise`).

    python benchmarks/power_design.py                                # the default grid
    python benchmarks/power_design.py --gnd 0.5 --scenes 14,40,80,160 --seeds 1,3,5
    python benchmarks/power_design.py --noise-sd 0.2 --resid-share 0.5 --kinds gain,gnd
    python benchmarks/power_design.py --shifts D.npy --target 8

Precision: ``--n-sim`` draws per design (default 1000): the simulated power near 0.8 has a Monte
Carlo SE of sqrt(0.16 / n_sim) (0.013), a few per cent of the MDE; the tests in
tests/metrics/test_power.py compare it with analytic power.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vat.metrics.power import KINDS, estimate_noise, minimum_detectable_effect, noise_model
from vat.metrics.prediction import load_predictions


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=_ints, default=[14, 40, 80], help="held-out scenes, comma list")
    p.add_argument("--seeds", type=_ints, default=[1, 3, 5], help="seeds per arm, comma list")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    p.add_argument("--noise-sd", type=float, default=0.10, help="scene SD of one run's shifts")
    p.add_argument("--corr", type=float, default=0.0, help="correlation of the values' noise")
    p.add_argument("--resid-share", type=float, default=0.0,
                   help="share of the scene variance that differs between seeds")  # fmt: skip
    p.add_argument("--seed-sd", type=float, default=0.010, help="between-seed SD of a run's mean")
    p.add_argument("--values", type=int, default=10, help="values measured (the target included)")
    p.add_argument("--gain", type=float, default=0.094, help="the gain GND is relative to")
    p.add_argument("--target", type=int, default=0, help="the target's column")
    p.add_argument("--prediction", default="benevolence",
                   help="Feldman 2021 target whose foundation pattern is tested")  # fmt: skip
    p.add_argument("--shifts", default=None, help=".npy shifts to estimate the noise from")
    p.add_argument("--gnd", type=float, default=None, help="report the smallest design for it")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--n-sim", type=int, default=1000)
    p.add_argument("--rng", type=int, default=0, help="simulation seed")
    p.add_argument("--smoke", action="store_true", help="a tiny grid and 200 draws")
    p.add_argument("--no-write", action="store_true", help="accepted for the bench harness")
    a = p.parse_args(argv)
    kinds = [k for k in a.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        p.error(f"unknown kinds {bad}; expected some of {KINDS}")
    if a.smoke:
        a.scenes, a.seeds, a.n_sim = [14, 40], [1, 3], 200

    weights = np.array(list(load_predictions()[a.prediction].values()))
    if a.shifts:
        nm = estimate_noise(np.load(a.shifts))
        nm_pred = nm.subset(list(range(min(nm.n_values, weights.size))))
        source = f"estimated from {a.shifts}"
    else:
        kw = dict(corr=a.corr, resid_share=a.resid_share, seed_sd=a.seed_sd)
        nm = noise_model(a.noise_sd, n_values=a.values, **kw)
        nm_pred = noise_model(a.noise_sd, n_values=weights.size, **kw)
        source = (f"scene SD {a.noise_sd}, corr {a.corr}, seed-varying share {a.resid_share}, "
                  f"seed SD {a.seed_sd}")  # fmt: skip
    if nm_pred.n_values != weights.size:
        p.error(f"the prediction needs {weights.size} values; the shifts have {nm.n_values}")
    print(f"# Minimum detectable effect at {a.power:.0%} power, alpha {a.alpha}, {a.n_sim} draws\n")
    print(f"noise: {source}; gain {a.gain} (for GND); prediction: Feldman 2021, {a.prediction}\n")
    head = ["scenes", "seeds", *[f"MDE {k}" for k in kinds]]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    t0, found = time.perf_counter(), None
    for X in a.scenes:
        for S in a.seeds:
            row = [str(X), str(S)]
            for k in kinds:
                r = minimum_detectable_effect(
                    k, X, S, nm_pred if k == "prediction" else nm, alpha=a.alpha,
                    power=a.power, n_sim=a.n_sim, rng=a.rng, target=a.target, gain=a.gain,
                    weights=weights,
                )  # fmt: skip
                row.append("n/a" if np.isnan(r.mde) else f"{r.mde:.3g}")
                if k == "gnd" and a.gnd is not None and found is None and r.mde <= a.gnd:
                    found = (X, S, r.mde)
            print("| " + " | ".join(row) + " |")
    print(f"\nunits: gain and prediction in score units, GND as a ratio to |gain|, nVAT as "
          f"debiased RMS Spearman; {time.perf_counter() - t0:.1f} s")  # fmt: skip
    if a.gnd is not None:
        if found:
            print(f"GND {a.gnd}: detectable at 80 % power from {found[0]} scenes x {found[1]} seeds "
                  f"(MDE {found[2]:.3g}), the first such design in the grid's order")  # fmt: skip
        else:
            print(f"GND {a.gnd}: not detectable at 80 % power by any design in the grid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
