"""``python -m vat.launch {sbatch,smoke-report} ...``: print an sbatch script (`render_sbatch`) or
the GPU smoke table (`smoke_table`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from vat.launch.sbatch import SbatchJob, render_sbatch
from vat.launch.smoke import smoke_metrics, smoke_table


def _sbatch_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m vat.launch sbatch",
        description="Print an sbatch script running `srun python train.py` on N nodes x G GPUs. "
        "Hydra overrides go after `--`.",
    )
    # every dest is a field of SbatchJob, and every default is the field's
    p.add_argument("--nodes", type=int, default=SbatchJob.nodes)
    p.add_argument("--gpus-per-node", type=int, default=SbatchJob.gpus_per_node,
                   help="0: a CPU job (see --tasks-per-node)")  # fmt: skip
    p.add_argument("--tasks-per-node", type=int, help="processes per node (default: one per GPU)")
    p.add_argument("--time", default=SbatchJob.time, help="walltime, HH:MM:SS or D-HH:MM:SS")
    p.add_argument("--job-name", default=SbatchJob.job_name)
    p.add_argument("--partition")
    p.add_argument("--account")
    p.add_argument("--cpus-per-task", type=int)
    p.add_argument("--mem", help="per node, e.g. 0 (all) or 500G")
    p.add_argument(
        "--signal-lead",
        dest="signal_lead_s",
        type=int,
        default=SbatchJob.signal_lead_s,
        help="seconds before the time limit at which to checkpoint and requeue (0: no guard)",
    )
    p.add_argument("--requeue-signal", default=SbatchJob.requeue_signal)
    p.add_argument("--run-dir", default=SbatchJob.run_dir)
    p.add_argument("--python", default=SbatchJob.python)
    p.add_argument(
        "--sbatch",
        dest="extra_sbatch",
        action="append",
        default=[],
        help="an extra #SBATCH flag (repeatable), e.g. --sbatch qos=high",
    )
    p.add_argument("-o", "--output", help="write the script here instead of stdout")
    if "--" in argv:
        i = argv.index("--")
        argv, overrides = argv[:i], argv[i + 1 :]
    else:
        overrides = []
    a = p.parse_args(argv)
    shown = []  # the command line, without where the script was written
    skip = False
    for arg in argv:
        if skip or arg.startswith("--output="):
            skip = False
            continue
        skip = arg in ("-o", "--output")
        if not skip:
            shown.append(arg)
    command = shlex.join(["python", "-m", "vat.launch", "sbatch", *shown, "--", *overrides])
    job = {f.name: getattr(a, f.name) for f in dataclasses.fields(SbatchJob)}
    text = render_sbatch(overrides, command=command, script_name=a.output or "<this script>", **job)
    if a.output:
        Path(a.output).write_text(text)
        Path(a.output).chmod(0o755)
    else:
        sys.stdout.write(text)
    return 0


def _smoke_report_cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m vat.launch smoke-report")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--json", help="also write the results here")
    a = p.parse_args(argv)
    results = [smoke_metrics(d) for d in a.run_dirs]
    print(smoke_table(results))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand (``sbatch``, ``smoke-report``) on `argv` (default: ``sys.argv[1:]``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"sbatch": _sbatch_cli, "smoke-report": _smoke_report_cli}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m vat.launch {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])
