"""Local check: the metric layer on real models' Likert judgments (VIA task 1, not shipped).

VIA task 1 asked each model, for every (country, topic) scene, to rate the importance of the 56
Schwartz items on a Likert scale (1 = most important). We turn one model's ratings into a pre state
and another's into a post state (score = -rating, so higher = endorses more; micro-values averaged
into their basic value) and compute the full VAT as if the second model were an intervention on
the first. This exercises every metric on real, messy judgments (ties, missing answers).

Without arguments it compares four model pairs and prints one table row each (target benevolence):
gain, GND with its noise floor, nVAT raw / permutation-null mean / excess (debiased) with its
interval and p-value, circumplex consistency with its Mantel p, and the unevenness test.

Reads ../shared/data/vat_paper (research-only data, never copied into the project):
    python benchmarks/via_judgments_check.py [pre_model post_model [target]]
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from vat.metrics import compute_vat, micro_to_basic_state
from vat.report import summary_table
from vat.taxonomy import UnknownValueError, load_taxonomy

V = load_taxonomy("schwartz")

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared/data/vat_paper/via_value_action_gap/model_judgments_task1"
)


def states(model: str) -> tuple[list[tuple[str, str]], np.ndarray, int]:
    ratings: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    bad = 0
    with (DATA / f"{model}_t1.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            m = re.search(r"\{.*\}", row["response"], re.S)
            try:
                answers = json.loads(m.group(0)) if m else {}
            except json.JSONDecodeError:
                answers = {}
            if not answers:
                bad += 1
            for name, r in answers.items():
                try:
                    micro = V.normalize_micro_value(name)
                    ratings[row["country"], row["topic"]][micro].append(float(r))
                except (UnknownValueError, ValueError):
                    continue
    scenes = sorted(ratings)
    S = np.full((len(scenes), len(V.micro_names)), np.nan)
    for i, sc in enumerate(scenes):
        for j, m in enumerate(V.micro_names):
            if ratings[sc][m]:
                S[i, j] = -np.mean(ratings[sc][m])  # 1 = most important -> highest score
    return scenes, S, bad


PAIRS = [
    ("gpt-3.5-turbo", "openai-gpt-4o"),
    ("gpt-4o-mini", "openai-gpt-4o"),
    ("gemma-2-9b-it", "Llama-3.3-70B-Instruct"),
    ("gpt-3.5-turbo", "anthropic-claude-sonnet-4-20250514"),
]


def compare(pre: str, post: str, target: str, verbose: bool) -> dict:
    sc_pre, M_pre, bad_pre = states(pre)
    sc_post, M_post, bad_post = states(post)
    common = sorted(set(sc_pre) & set(sc_post))
    idx_pre = [sc_pre.index(s) for s in common]
    idx_post = [sc_post.index(s) for s in common]
    S_pre = micro_to_basic_state(M_pre[idx_pre], V)
    S_post = micro_to_basic_state(M_post[idx_post], V)
    print(
        f"{pre} -> {post}: {len(common)} shared scenes; unparsed responses {bad_pre} / {bad_post}"
    )
    res = compute_vat(S_pre, S_post, target, V, n_bootstrap=1000, n_permutations=1000, seed=0)
    if verbose:
        print(summary_table(res))
        print("\nmicro level (target = a micro-value of the target value):")
        micro_target = V.micro_values_of(target)[0]
        res_m = compute_vat(
            M_pre[idx_pre], M_post[idx_post], micro_target, V, V.micro_names,
            n_bootstrap=200, n_permutations=200,
        )  # fmt: skip
        print(f"  target {micro_target}: gain {res_m.gain:.3f}, GND {res_m.gnd_l1:.3f}, "
              f"nVAT raw {res_m.nvat_offdiag:.3f} / null {res_m.nvat_offdiag_null:.3f} / "
              f"excess {res_m.nvat_offdiag_excess:.3f} (p {res_m.p_nvat:.3g}), "
              f"{res_m.n_pairs_nvat} of {56 * 55 // 2} pairs with >= {res_m.min_overlap} shared "
              "scenes")  # fmt: skip
    lo, hi = res.intervals["nvat_offdiag"]
    return {
        "pair": f"{pre} -> {post}",
        "scenes": len(common),
        "gain": f"{res.gain:.3f} (p {res.p_gain:.3g})",
        "GND (floor)": f"{res.gnd_l1:.3f} ({res.gnd_l1_null:.3f})",
        "nVAT raw": f"{res.nvat_offdiag:.3f}",
        "nVAT null": f"{res.nvat_offdiag_null:.3f}",
        "nVAT excess [CI]": f"{res.nvat_offdiag_excess:.3f} [{lo:.3f}, {hi:.3f}]",
        "p nVAT": f"{res.p_nvat:.3g}",
        "circumplex (Mantel p)": f"{res.circumplex_consistency:.2f} ({res.p_circumplex:.3g})",
        "uneven p": f"{res.p_uneven:.3g}",
    }


def main(pre: str | None = None, post: str | None = None, target: str = "benevolence") -> None:
    pairs = [(pre, post)] if pre and post else PAIRS
    rows = [compare(a, b, target, verbose=len(pairs) == 1) for a, b in pairs]
    cols = list(rows[0])
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
