"""ZeRO-3 against ZeRO-2 on the 2-process CPU harness: optimizer-step time, collectives, trace cache.

What is measured: ``python train.py`` (DPO, LoRA r16, the tiny model, 2 CPU processes over gloo
through `tests.distributed.CPUDeepSpeedStrategy`, micro-batch 1 pair, 2 pairs per step) for 12
steps with the VAT evaluation at steps 0, 6 and 12. Per optimizer step (benchmarks/zero3_stats.py):
wall time, and the DeepSpeed collectives by kind; "train step" is the median of the steps without
an evaluation, the first one (warm-up) left out; "eval step" the median of steps 6 and 12 (the
step plus the VAT callback's scoring of the held-out set). Trace-cache invalidations are the
``Invalidate trace cache`` lines DeepSpeed logs with ``log_trace_cache_warnings: true``.

The tiny model (hidden 128) keeps every matrix under ZeRO-3's default persistence threshold
(1e5 elements): ZeRO-3 would partition nothing but the embeddings. So the baseline here uses a
threshold scaled to the model, 5,000 = 1e5 x (128/576)^2, which partitions what 1e5 partitions on
SmolLM2-135M (hidden 576): the base weights, not the r16 LoRA matrices. The variants:

- ``zero2``: conf/strategy/deepspeed_zero2.yaml;
- ``zero3 before``: deepspeed_zero3.yaml with that threshold, the evaluation fetching weights
  module by module (``callbacks.vat.gather_zero3=false``, what every run did before);
- ``zero3 gathered eval``: the default now: the VAT callback gathers the whole model once per
  evaluation (`deepspeed.zero.GatheredParameters`);
- ``zero3 leaf LoRA`` / ``leaf decoder layer``: plus ``strategy.z3_leaf_modules`` (peft's LoRA
  ``Linear``: one fetch hook per LoRA layer instead of five; or a whole decoder layer);
- ``zero3 TRL threshold``: 10 x hidden = 1,280, TRL's choice for a ZeRO-3 reference model: the LoRA
  matrices are partitioned too;
- ``zero3 persistent``: threshold 1e9: nothing partitioned (the bound on what persistence can buy).

Rounds alternate the variants; medians over rounds. The machine is shared with nothing else only if
you make it so: timings on a 2-core machine are noisy, the collective counts are exact.

    python benchmarks/bench_zero3.py            # RESULTS.md section "zero3"
    python benchmarks/bench_zero3.py --reps 1 --no-write
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

ROOT = Path(__file__).resolve().parents[1]
STEPS, EVERY = 12, 6
SCALED = 5000  # 1e5 x (128 / 576)^2: see the module docstring
BASE = [
    "model=tiny", "logger=csv", "~probe@probes.judgment", "callbacks.vat.log_images=false",
    "metrics.n_bootstrap=100", "metrics.n_permutations=200", "probes.likelihood.progress=false",
    "~callbacks.progress", "trainer.devices=2", "trainer.accelerator=cpu",
    "strategy._target_=tests.distributed.CPUDeepSpeedStrategy",
    "security.allow_targets=[tests.distributed.,zero3_stats.]", "batch.micro_size=1",
    "batch.global_size=2", f"trainer.max_steps={STEPS}", f"callbacks.vat.every_n_steps={EVERY}",
    "+callbacks.zstats._target_=zero3_stats.ZeroStats",
]  # fmt: skip
Z3 = [
    "strategy=deepspeed_zero3",
    "+strategy.config.zero_optimization.log_trace_cache_warnings=true",
]
THRESHOLD = "strategy.config.zero_optimization.stage3_param_persistence_threshold="
LEAF = "+strategy.z3_leaf_modules="
VARIANTS = {
    "zero2": ["strategy=deepspeed_zero2"],
    "zero3 before": [*Z3, f"{THRESHOLD}{SCALED}", "callbacks.vat.gather_zero3=false"],
    "zero3 gathered eval": [*Z3, f"{THRESHOLD}{SCALED}"],
    "zero3 leaf LoRA": [*Z3, f"{THRESHOLD}{SCALED}", f"{LEAF}[peft.tuners.lora.layer.Linear]"],
    "zero3 leaf decoder layer": [*Z3, f"{THRESHOLD}{SCALED}", f"{LEAF}[LlamaDecoderLayer]"],
    "zero3 TRL threshold": [*Z3, f"{THRESHOLD}1280"],
    "zero3 persistent": [*Z3, f"{THRESHOLD}1000000000"],
}  # "zero3 TRL threshold" and "zero3 persistent" keep the gathered evaluation (the default)


def run(name: str, args: list[str], work: Path, cache: Path) -> dict:
    out = work / re.sub(r"\W+", "_", name)
    stats = out.with_suffix(".json")
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")])}  # fmt: skip
    cmd = [sys.executable, "train.py", *BASE, *args, f"+callbacks.zstats.out={stats}",
           f"paths.cache_dir={cache}", f"hydra.run.dir={out}"]  # fmt: skip
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if p.returncode != 0:  # a variant DeepSpeed cannot run: its error is the result
        errors = [x for x in p.stderr.splitlines() if "Error:" in x]
        return {"failed": errors[-1].strip() if errors else p.stderr[-300:], "wall": wall}
    s = json.loads(stats.read_text())
    steps = s["steps"]
    train = [r for r in steps[1:] if r["step"] % EVERY]
    evals = [r for r in steps if r["step"] % EVERY == 0]

    def gathers(rows: list[dict]) -> float:
        return statistics.median(
            sum(v for k, v in r["collectives"].items() if k.startswith("all_gather")) for r in rows
        )

    return {"train_s": statistics.median(r["seconds"] for r in train),
            "eval_s": statistics.median(r["seconds"] for r in evals),
            "gathers": gathers(train), "eval_gathers": gathers(evals), "wall": wall,
            "invalidations": (p.stdout + p.stderr).count("Invalidate trace cache")}  # fmt: skip


def reading(med: dict) -> str:
    """The before/after sentence, from this run's numbers."""
    z2, before, after = med["zero2"], med["zero3 before"], med["zero3 gathered eval"]

    def ratio(m: dict, k: str) -> str:
        return f"{m[k] / z2[k]:.2f}x"

    return (
        f"ZeRO-3 / ZeRO-2, before -> after (the gathered evaluation, now the default): train step "
        f"{ratio(before, 'train_s')} -> {ratio(after, 'train_s')} (the training forward is "
        f"untouched: the same {after['gathers']:.0f} all-gather calls per step), evaluation step "
        f"{ratio(before, 'eval_s')} -> {ratio(after, 'eval_s')} ({before['eval_gathers']:.0f} -> "
        f"{after['eval_gathers']:.0f} all-gather calls), trace-cache invalidations "
        f"{before['invalidations']:.0f} -> {after['invalidations']:.0f} per run. All-gathers are "
        "counted as calls (a coalesced fetch of many parameters is one call): partitioning the "
        "LoRA matrices too (TRL's threshold) made fewer calls here, keeping everything persistent "
        "more: the call count is not the bytes moved. Leaf modules (`strategy.z3_leaf_modules`) do not run with peft LoRA "
        "on this DeepSpeed (errors above). The CPU harness has gloo and no overlap of "
        "communication with compute: it shows counts and ratios, not GPU step times."
    )


def main() -> None:
    args = common.parser(__doc__.splitlines()[0]).parse_args()
    reps = 1 if args.smoke else args.reps
    work = Path(tempfile.mkdtemp(prefix="bench_zero3_"))
    cache = work / "cache"
    rounds: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    for r in range(reps):
        for name, extra in VARIANTS.items():
            if rounds[name] and "failed" in rounds[name][0]:
                continue  # it will fail again
            m = run(name, extra, work, cache)
            rounds[name].append(m)
            if "failed" in m:
                print(f"round {r + 1} {name}: failed: {m['failed']}", flush=True)
                continue
            print(f"round {r + 1} {name}: train step {m['train_s']:.3f} s, eval step "
                  f"{m['eval_s']:.2f} s, all-gathers/step {m['gathers']:.0f} "
                  f"(eval step {m['eval_gathers']:.0f}), trace invalidations "
                  f"{m['invalidations']}", flush=True)  # fmt: skip
    med = {k: {f: statistics.median(m[f] for m in v) for f in v[0] if f != "failed"}
           for k, v in rounds.items() if "failed" not in v[0]}  # fmt: skip
    z2 = med["zero2"]
    rows = [[name, f"{m['train_s']:.3f}", f"{m['train_s'] / z2['train_s']:.2f}x",
             f"{m['eval_s']:.2f}", f"{m['eval_s'] / z2['eval_s']:.2f}x", f"{m['gathers']:.0f}",
             f"{m['eval_gathers']:.0f}", f"{m['invalidations']:.0f}", f"{m['wall']:.0f}"]
            for name, m in med.items()]  # fmt: skip
    rows += [[name, "failed", "", "", "", "", "", "", f"{v[0]['wall']:.0f}"]
             for name, v in rounds.items() if "failed" in v[0]]  # fmt: skip
    failures = [f"- {name}: `{v[0]['failed']}`" for name, v in rounds.items() if "failed" in v[0]]
    md = "\n".join(
        [
            "## ZeRO-3 vs ZeRO-2 on the 2-process CPU harness (`bench_zero3.py`)",
            "",
            f"{common.machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"median of {reps} alternating rounds. DPO, LoRA r16, tiny model, 2 CPU processes (gloo), "
            f"{STEPS} steps of 2 pairs, VAT at 0/{EVERY}/{STEPS}; persistence threshold {SCALED} "
            "(scaled from 1e5 on SmolLM2-135M: see the script).",
            "",
            common.table(
                [
                    "variant",
                    "train step s",
                    "vs ZeRO-2",
                    "eval step s",
                    "vs ZeRO-2",
                    "all-gathers / train step",
                    "all-gathers / eval step",
                    "trace invalidations (run)",
                    "run wall s",
                ],
                rows,
            ),
            *(["", "Failed (the error each rank raised):", *failures] if failures else []),
        ]
    )
    print(md)
    if not args.no_write and not args.smoke:
        common.write_section("zero3", md)


if __name__ == "__main__":
    main()
