"""What the launch tests share: the repository's paths, fake SLURM binaries on PATH, and sbatch
scripts read back (their #SBATCH flags) or run under a fake allocation."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
LAUNCH = ROOT / "launch"


def fake_bin(tmp_path: Path, name: str, body: str) -> Path:
    """An executable `name` in tmp_path/bin; returns that directory (to prepend to PATH)."""
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    exe = d / name
    exe.write_text("#!/bin/bash\n" + body + "\n")
    exe.chmod(0o755)
    return d


def sbatch_flags(text: str) -> dict:
    flags = {}
    for line in text.splitlines():
        if line.startswith("#SBATCH --"):
            k, _, v = line[len("#SBATCH --") :].partition("=")
            flags[k] = v or True
    return flags


def run_sbatch_script(tmp_path, text, args=(), **env) -> list[str]:
    """Run an sbatch script under a fake SLURM allocation with a fake `srun` that prints its argv,
    one argument per line: what every rank would run, after the shell's expansions."""
    script = tmp_path / "job.sh"
    script.write_text(text)
    bindir = fake_bin(tmp_path, "srun", 'printf "%s\\n" "$@"')
    full = {"PATH": f"{bindir}:{os.environ['PATH']}", "SLURM_SUBMIT_DIR": str(ROOT), **env}
    out = subprocess.run(["bash", str(script), *args], env=full, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("vat: job ")
    return lines[1:]
