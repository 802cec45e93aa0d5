"""The shell recipes in launch/: `torchrun.sh` and `gpu_smoke.sh` in their dry-run modes print the
commands they would run, and those commands compose."""

import os
import shlex
import subprocess

from tests.launch.helpers import LAUNCH


def test_torchrun_recipe_dry_run():
    env = {**os.environ, "DRY_RUN": "1", "NNODES": "2", "NPROC_PER_NODE": "8",
           "MASTER_ADDR": "node0", "RUN_DIR": "/shared/run1", "RUN_ID": "exp1"}  # fmt: skip
    out = subprocess.run(["bash", str(LAUNCH / "torchrun.sh"), "value=security", "x=a b"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert shlex.split(out.stdout) == [
        "torchrun", "--nnodes=2", "--nproc_per_node=8", "--rdzv_backend=c10d",
        "--rdzv_endpoint=node0:29500", "--rdzv_id=exp1", "train.py", "hydra.run.dir=/shared/run1",
        "trainer.devices=8", "trainer.num_nodes=2", "value=security", "x=a b",
    ]  # fmt: skip
    del env["RUN_DIR"]  # several nodes need one shared run dir
    out = subprocess.run(
        ["bash", str(LAUNCH / "torchrun.sh")], env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "set RUN_DIR" in out.stderr


# --------------------------------------------------------------------------- GPU smoke script
def test_gpu_smoke_dry_run_commands_compose(hydra_cfg, tmp_path):
    for script in ("gpu_smoke.sh", "torchrun.sh", "sbatch_1node_8gpu.sh", "sbatch_2node_8gpu.sh"):
        subprocess.run(["bash", "-n", str(LAUNCH / script)], check=True)
    env = {**os.environ, "SMOKE_DRY_RUN": "1", "SMOKE_OUT": str(tmp_path / "smoke")}
    out = subprocess.run(["bash", str(LAUNCH / "gpu_smoke.sh"), "batch.micro_size=2"], env=env,
                         capture_output=True, text=True, check=True)  # fmt: skip
    commands = [shlex.split(line[2:]) for line in out.stdout.splitlines() if line.startswith("+ ")]
    assert len(commands) == 4  # build the model, ZeRO-2, ZeRO-3, the report
    assert "smollm2_model_dir" in commands[0][-1]
    runs = commands[1:3]
    for argv, stage in zip(runs, (2, 3), strict=True):
        assert argv[1] == "launch/gpu_smoke.py"
        overrides = argv[2:]
        assert {"model=smollm2_135m_instruct", "method=dpo", "trainer.precision=bf16-mixed",
                "trainer.devices=1", f"strategy=deepspeed_zero{stage}"} <= set(overrides)  # fmt: skip
        assert overrides[-1] == "batch.micro_size=2"  # extra arguments reach every run
        # every override is valid for train.py's config
        cfg = hydra_cfg([o for o in overrides if not o.startswith("hydra.")])
        assert cfg.strategy.config.zero_optimization.stage == stage
        assert cfg.trainer.precision == "bf16-mixed" and "progress" not in cfg.callbacks
    assert commands[3][1:4] == ["-m", "vat.launch", "smoke-report"]
