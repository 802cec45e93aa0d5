"""Cluster launch, offline: sbatch scripts, the submitit presets, the torchrun and GPU smoke recipes,
the launch guards and the SLURM walltime guard (checkpoint + requeue on SIGUSR1)."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import OmegaConf, open_dict

from tests.overrides import FAST
from vat import launch as VL

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
LAUNCH = ROOT / "launch"


@pytest.fixture
def hydra_cfg(tmp_path):
    """hydra_cfg([...], multirun=False) -> the composed config with its hydra node, HydraConfig set."""

    def _compose(overrides=(), multirun=False):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN if multirun else RunMode.RUN
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.runtime.cwd = str(ROOT)
        HydraConfig.instance().set_config(cfg)
        return cfg

    yield _compose
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


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


# --------------------------------------------------------------------------- sbatch scripts
def test_sbatch_multinode_script():
    text = VL.render_sbatch(
        ["value=benevolence", "method=dpo", "strategy=deepspeed_zero3"],
        nodes=2, gpus_per_node=8, time="24:00:00", partition="gpu", cpus_per_task=12,
    )  # fmt: skip
    flags = sbatch_flags(text)
    assert flags["nodes"] == "2" and flags["ntasks-per-node"] == "8" and flags["gres"] == "gpu:8"
    assert flags["time"] == "24:00:00" and flags["partition"] == "gpu"
    assert (
        flags["cpus-per-task"] == "12" and "export SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK" in text
    )
    # the walltime guard: SIGUSR1 120 s before the limit, the job may be requeued, logs appended
    assert flags["signal"] == "SIGUSR1@120" and flags["requeue"] is True
    assert flags["open-mode"] == "append"
    assert text.startswith("#!/bin/bash\n")
    # the srun line: one python per task, explicit run dir, devices/nodes from the allocation
    srun = text[text.index("srun ") :]
    argv = shlex.split(srun.replace("\\\n", " "))
    assert argv[:4] == ["srun", "--kill-on-bad-exit=1", "$PYTHON", "train.py"]
    assert argv[4:8] == [
        "hydra.run.dir=$RUN_DIR", "trainer.devices=$SLURM_NTASKS_PER_NODE",
        "trainer.num_nodes=$SLURM_NNODES", VL.slurm_plugin_override("SIGUSR1"),
    ]  # fmt: skip
    assert argv[8:] == ["value=benevolence", "method=dpo", "strategy=deepspeed_zero3", "$@"]
    assert 'RUN_DIR="${VAT_RUN_DIR:-outputs/train/slurm/${SLURM_JOB_ID}}"' in text
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)


def test_sbatch_script_runs_srun_with_expanded_arguments(tmp_path):
    """Executed under a fake allocation: the exact argv srun gets, with the per-job run dir."""
    text = VL.render_sbatch(["value=benevolence", "method=dpo"], nodes=2, gpus_per_node=8)
    env = {"SLURM_JOB_ID": "777", "SLURM_NNODES": "2", "SLURM_NTASKS_PER_NODE": "8"}
    argv = run_sbatch_script(tmp_path, text, ["model=tiny", "x='a b'"], **env)
    assert argv == [
        "--kill-on-bad-exit=1", "python", "train.py", "hydra.run.dir=outputs/train/slurm/777",
        "trainer.devices=8", "trainer.num_nodes=2", VL.slurm_plugin_override(),
        "value=benevolence", "method=dpo", "model=tiny", "x='a b'",
    ]  # fmt: skip
    # VAT_RUN_DIR and PYTHON from the submitting environment win
    argv = run_sbatch_script(
        tmp_path, text, VAT_RUN_DIR="/shared/r1", PYTHON="/venv/bin/python", **env
    )
    assert argv[1] == "/venv/bin/python" and argv[3] == "hydra.run.dir=/shared/r1"


def test_sbatch_one_node_without_walltime_guard():
    text = VL.render_sbatch(
        ["value=security"], nodes=1, gpus_per_node=4, time="02:00:00", signal_lead_s=0
    )
    flags = sbatch_flags(text)
    assert flags["nodes"] == "1" and flags["ntasks-per-node"] == "4" and flags["gres"] == "gpu:4"
    assert "signal" not in flags and "requeue" not in flags and "trainer.plugins" not in text
    with pytest.raises(ValueError, match="nodes=0"):
        VL.render_sbatch(nodes=0)
    with pytest.raises(ValueError, match="double quotes"):
        VL.render_sbatch(run_dir='out/"x"')


def test_sbatch_cli_prints_the_script(capsys):
    argv = ["--nodes", "2", "--gpus-per-node", "8", "--time", "24:00:00", "--signal-lead", "300",
            "--sbatch", "qos=high", "--sbatch=--exclusive", "--", "value=benevolence", "method=dpo"]  # fmt: skip
    assert VL.main(["sbatch", *argv]) == 0
    text = capsys.readouterr().out
    flags = sbatch_flags(text)
    assert flags["signal"] == "SIGUSR1@300" and flags["qos"] == "high" and flags["nodes"] == "2"
    assert flags["exclusive"] is True
    assert "# Rendered by: python -m vat.launch sbatch " + shlex.join(argv) in text
    assert VL.main(["nope"]) == 2


@pytest.mark.parametrize("name", ["sbatch_1node_8gpu.sh", "sbatch_2node_8gpu.sh"])
def test_example_scripts_are_rendered_by_the_cli(name, tmp_path):
    """launch/*.sh are `python -m vat.launch sbatch` output: re-render from their header line."""
    text = (LAUNCH / name).read_text()
    command = next(line for line in text.splitlines() if line.startswith("# Rendered by: "))
    argv = shlex.split(command.removeprefix("# Rendered by: "))
    assert argv[:4] == ["python", "-m", "vat.launch", "sbatch"]
    i = argv.index("--")
    out = tmp_path / "again.sh"
    VL.main(["sbatch", *argv[4:i], "-o", str(out), *argv[i:]])
    assert out.read_text().replace(str(out), f"launch/{name}") == text, (
        f"launch/{name} is stale: re-run {command[16:]} -o launch/{name}"
    )
    assert os.access(LAUNCH / name, os.X_OK)


def test_walltime_plugin_override_composes_and_builds_slurm_environment(hydra_cfg, monkeypatch):
    from hydra.utils import instantiate
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    cfg = hydra_cfg(["model=tiny", VL.slurm_plugin_override("SIGUSR1")])
    for k, v in {
        "SLURM_NTASKS": "1",
        "SLURM_NTASKS_PER_NODE": "1",
        "SLURM_JOB_NAME": "vat",
    }.items():
        monkeypatch.setenv(k, v)
    (env,) = instantiate(cfg.trainer.plugins)
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue
    assert env.requeue_signal == signal.SIGUSR1
    assert VL.slurm_environment(requeue_signal="USR2").requeue_signal == signal.SIGUSR2


# --------------------------------------------------------------------------- submitit presets
@pytest.mark.parametrize(
    ("preset", "nodes"), [("slurm_1node_8gpu", 1), ("slurm_multinode", 2)]
)  # fmt: skip
def test_submitit_presets_compose(hydra_cfg, preset, nodes, tmp_path, monkeypatch):
    cfg = hydra_cfg([f"hydra/launcher={preset}", "value=benevolence"], multirun=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (
        launcher["_target_"]
        == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    )
    assert (launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]) == (
        nodes,
        8,
        8,
    )
    assert launcher["timeout_min"] == 1440 and launcher["signal_delay_s"] == 120
    assert launcher["additional_parameters"] == {"signal": "USR1@120", "requeue": True}
    assert launcher["max_num_timeout"] == 0  # submitit's own requeue is not used
    assert cfg.hydra.callbacks.vat_launch_check._target_ == "vat.launch.LaunchCheck"
    assert cfg.trainer.devices == 1  # the job config is not touched: LaunchCheck demands overrides

    # The sbatch text submitit would submit for one cell, built as the launcher builds it.
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setenv("PATH", f"{fake_bin(tmp_path, 'srun', 'exit 0')}:{os.environ['PATH']}")
    params = {k: v for k, v in launcher.items() if k not in ("_target_", "submitit_folder")}
    executor = submitit.AutoExecutor(
        folder=tmp_path / "sub",
        cluster="slurm",
        slurm_max_num_timeout=params.pop("max_num_timeout"),
    )
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -m submitit.core._submit x", "u")
    flags = sbatch_flags(text)
    assert flags["nodes"] == str(nodes) and flags["ntasks-per-node"] == "8"
    assert flags["gpus-per-node"] == "8" and flags["time"] == "1440"
    assert flags["signal"] == "USR1@120" and flags["requeue"] is True
    assert text.count("#SBATCH --signal") == 1
    assert "\nsrun " in text  # the tasks are started by srun


def test_launch_check_refuses_a_sweep_whose_trainer_does_not_match(hydra_cfg):
    cfg = hydra_cfg(["hydra/launcher=slurm_multinode"], multirun=True)
    with pytest.raises(SystemExit, match=r"Add: trainer.devices=8 trainer.num_nodes=2"):
        VL.LaunchCheck().on_multirun_start(config=cfg)
    ok = hydra_cfg(["hydra/launcher=slurm_multinode", "trainer.devices=8", "trainer.num_nodes=2"])
    VL.LaunchCheck().on_multirun_start(config=ok)
    bad = hydra_cfg(["hydra/launcher=slurm_1node_8gpu", "trainer.devices=8",
                     "hydra.launcher.gpus_per_node=4"])  # fmt: skip
    with pytest.raises(VL.LaunchError, match="gpus_per_node=4 but tasks_per_node=8"):
        VL.check_launcher_matches_trainer(bad)


@pytest.mark.slow
def test_sweep_preset_refused_before_anything_is_submitted(tmp_path):
    """End to end through train.py: the mismatch stops the multirun before submitit is reached."""
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "value=benevolence,security", "method=dpo",
         "hydra/launcher=slurm_multinode", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1
    assert "Add: trainer.devices=8 trainer.num_nodes=2" in out.stderr
    assert "srun" not in out.stderr  # submitit never ran (it would look for srun)
    assert not (tmp_path / "sweep" / ".submitit").exists()


# --------------------------------------------------------------------------- check_launch
SLURM_1x2 = {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "1",
             "SLURM_JOB_NAME": "vat", "SLURM_JOB_ID": "1"}  # fmt: skip
TORCHRUN_2x2 = {"TORCHELASTIC_RUN_ID": "x", "LOCAL_WORLD_SIZE": "2", "WORLD_SIZE": "4"}


@pytest.mark.parametrize(
    ("overrides", "multirun", "env", "error"),
    [
        (["trainer.devices=2", "strategy=ddp"], False, {}, None),  # a single run: Lightning spawns
        (["trainer.devices=1"], True, {}, None),  # one device: nothing to spawn
        (["trainer.devices=2", "strategy=ddp"], True, {}, "re-runs the whole sweep"),
        (["trainer.devices=2"], True, {}, "re-runs the whole sweep"),  # strategy=auto -> ddp
        (["trainer.devices=4", "strategy=deepspeed_zero3"], True, {}, "hydra/launcher=slurm_"),
        (["trainer.devices=2", "strategy=ddp", "+strategy.start_method=spawn"], True, {}, None),
        (["trainer.devices=2"], False, SLURM_1x2, None),
        (["trainer.devices=8"], False, SLURM_1x2, r"Add: trainer.devices=2$"),
        (["trainer.devices=2", "trainer.num_nodes=2"], False, SLURM_1x2, "trainer.num_nodes=1"),
        (["trainer.devices=2"], True, SLURM_1x2, "every rank would run every cell"),
        (["trainer.devices=2", "trainer.num_nodes=2"], False, TORCHRUN_2x2, None),
        (["trainer.devices=4"], False, TORCHRUN_2x2, "Add: trainer.devices=2"),
        (["trainer.devices=2"], False, TORCHRUN_2x2, "Set trainer.num_nodes"),
        (["trainer.devices=2"], False, {**SLURM_1x2, "SLURM_JOB_NAME": "interactive"}, None),
    ],
)
def test_check_launch(hydra_cfg, overrides, multirun, env, error):
    cfg = hydra_cfg(overrides, multirun=multirun)
    if error is None:
        VL.check_launch(cfg, env=env)
    else:
        with pytest.raises(VL.LaunchError, match=error):
            VL.check_launch(cfg, env=env)


@pytest.mark.slow
def test_local_sweep_on_several_devices_is_refused_before_training(tmp_path):
    """train.py -m with the basic launcher and 2 devices: the first cell stops with the fix, and
    no rank is ever spawned (no checkpoint, no second copy of the sweep)."""
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "model=tiny", "logger=csv", "value=benevolence,security",
         "trainer.devices=2", "trainer.accelerator=cpu", "strategy=ddp", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0
    assert "re-runs the whole sweep in every extra rank" in out.stdout + out.stderr
    assert not list(sweep.glob("*/checkpoints"))


def test_check_launch_accepts_a_submitit_cell_started_by_srun(hydra_cfg):
    overrides = ["hydra/launcher=slurm_1node_8gpu", "trainer.devices=2"]
    VL.check_launch(hydra_cfg(overrides, multirun=True), env=SLURM_1x2)


# --------------------------------------------------------------------------- trainer.devices
@pytest.mark.parametrize(
    ("devices", "count"),
    [(1, 1), (8, 8), ("8", 8), (" 2 ", 2), ([0, 1], 2), ((3,), 1), ("0,1", 2), ("1,3,", 2),
     ("3,", 1), ("0, 1", 2), ("auto", None), ("AUTO", None), (-1, None), ("-1", None)],
)  # fmt: skip
def test_parse_devices(devices, count):
    """Counted by hand: "0,1" is two device ids (Lightning's list form), not device count 0,1."""
    assert VL.parse_devices(devices) == count
    assert VL.parse_devices(OmegaConf.create({"d": devices}).d) == count  # as the config gives it


@pytest.mark.parametrize(
    ("devices", "why"),
    [(0, "at least one device"), ("0", "at least one device"), (-2, "at least one device"),
     (True, "not a boolean"), ("two", ""), ("0,a", "device ids are whole"), ([0, "1"], "device ids are whole"),
     ([0, True], "device ids are whole"), ([], "no device ids"), (",", "no device ids"),
     ([1, 1], "each device id once"), ("0,0", "each device id once"), (None, ""), (1.5, "")],
)  # fmt: skip
def test_parse_devices_refuses_what_lightning_refuses(devices, why):
    with pytest.raises(ValueError, match=rf"^trainer\.devices={re.escape(repr(devices))}: {why}"):
        VL.parse_devices(devices)


def test_parse_devices_reads_strings_as_lightning_does():
    from lightning.fabric.utilities.device_parser import _normalize_parse_gpu_string_input

    for s in ("1", "8", "0,1", "1,3,", "3,", "0, 1", "-1"):
        ids = _normalize_parse_gpu_string_input(s)  # a count, -1 (all) or a list of ids
        want = None if ids == -1 else ids if isinstance(ids, int) else len(ids)
        assert VL.parse_devices(s) == want, s


def test_device_count_needs_a_number_and_world_size_uses_it():
    from vat.trainer import world_size

    assert VL.device_count("0,1", "x") == 2
    with pytest.raises(ValueError, match=r"trainer.devices='auto': give a number .* so that x$"):
        VL.device_count("auto", "x")
    assert world_size(OmegaConf.create({"devices": "0,1", "num_nodes": 2})) == 4
    with pytest.raises(ValueError, match=r"trainer.devices=-1: .*batch.global_size"):
        world_size(OmegaConf.create({"devices": -1, "num_nodes": 1}))


def test_check_launch_counts_device_ids(hydra_cfg):
    """trainer.devices="0,1" under a 2-task srun: two devices, as the allocation has."""
    VL.check_launch(hydra_cfg(["trainer.devices='0,1'"]), env=SLURM_1x2)
    with pytest.raises(VL.LaunchError, match=r"Add: trainer\.devices=2$"):
        VL.check_launch(hydra_cfg(["trainer.devices='0,1,2'"]), env=SLURM_1x2)


# --------------------------------------------------------------------------- torchrun
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


def test_smoke_report_reads_a_run(tmp_path, capsys):
    run = tmp_path / "deepspeed_zero3"
    (run / "csv" / "version_0").mkdir(parents=True)
    (run / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,perf/tokens_per_s,step,train/loss\n"
        "0,100.0,0,0.6931\n0,1000.0,1,0.69\n0,50.0,2,\n0,1200.0,3,0.6\n0,1100.0,3,\n"
    )
    (run / "smoke.json").write_text('{"status": "ok", "wall_s": 61.5, "peak_mem_allocated_gib": 1.5,'
                                    ' "peak_mem_reserved_gib": 2.0}')  # fmt: skip
    (run / "summary.json").write_text('{"final": {"likelihood": {"gain": 0.125}}}')
    m = VL.smoke_metrics(run)
    assert m["step0_loss"] == pytest.approx(0.6931) and m["steps"] == 4
    assert m["tokens_per_s"] == 1050.0  # median after step 0 (eval steps are slow outliers)
    assert VL.main(["smoke-report", str(run), str(tmp_path / "missing")]) == 0
    table = capsys.readouterr().out
    assert (
        "| deepspeed_zero3 | ok | 4 | 0.6931 | 1050 | 1.50 / 2.00 | 62 | likelihood 0.125 |"
        in table
    )
    assert "| missing | ? | 0 | - | - | - / - | - | - |" in table


@pytest.mark.slow
def test_gpu_smoke_helper_runs_train_on_cpu(tmp_path):
    """launch/gpu_smoke.py is train.py plus smoke.json (no GPU here: no memory figures)."""
    out = tmp_path / "run"
    args = [*FAST, "trainer.max_steps=2", "callbacks.vat.every_n_steps=2", f"hydra.run.dir={out}"]
    p = subprocess.run([sys.executable, "launch/gpu_smoke.py", *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    m = VL.smoke_metrics(out)
    assert m["status"] == "ok" and m["steps"] == 2 and m["peak_mem_allocated_gib"] is None
    assert m["step0_loss"] == pytest.approx(0.6931, abs=1e-3) and m["tokens_per_s"] > 0
    assert set(m["gain"]) == {"likelihood"}


# --------------------------------------------------------------------------- walltime guard
@pytest.mark.slow
def test_sigusr1_saves_hpc_checkpoint_requeues_and_resumes(tmp_path):
    """Under a fake one-task SLURM job: SIGUSR1 (what `#SBATCH --signal=SIGUSR1@120` sends) makes
    Lightning save hpc_ckpt_1.ckpt into the run dir and call `scontrol requeue <job id>`; the
    requeued job (same job id, same run dir) resumes from it."""
    out = tmp_path / "run"
    requeued = tmp_path / "scontrol.args"
    bindir = fake_bin(
        tmp_path, "scontrol", f'echo "$@" > "{requeued}.tmp" && mv "{requeued}.tmp" "{requeued}"'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": f"{bindir}:{os.environ['PATH']}",
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "vat", "SLURM_NTASKS": "1",
           "SLURM_NTASKS_PER_NODE": "1", "SLURM_NNODES": "1", "SLURM_PROCID": "0",
           "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}  # fmt: skip
    # a checkpoint every step shows how far training got; no VAT scoring but at the ends
    args = [*FAST, "trainer.max_steps=6", "callbacks.vat.every_n_steps=100",
            "callbacks.checkpoint.every_n_train_steps=1", "trainer.devices=1", "trainer.num_nodes=1",
            *VL.train_args(), f"hydra.run.dir={out}"]  # fmt: skip

    def start():
        log = (tmp_path / f"log{len(list(tmp_path.glob('log*')))}.txt").open("w")
        return subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT), log  # fmt: skip

    p, log = start()
    step2 = out / "checkpoints" / "epoch=0-step=2.ckpt"
    deadline = time.time() + 400
    while not step2.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert step2.exists(), (tmp_path / "log0.txt").read_text()[-3000:]
    p.send_signal(signal.SIGUSR1)
    while not requeued.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    p.kill()  # SLURM ends the job once it is requeued
    p.wait()
    log.close()
    assert requeued.read_text().split() == ["requeue", "4242"]
    hpc = out / "hpc_ckpt_1.ckpt"
    saved_step = torch.load(hpc, weights_only=False)["global_step"]
    assert 2 <= saved_step < 6

    # The requeued job: same environment, same command, same run dir. Once it has restored the
    # hpc checkpoint and trained one more step it has shown what matters (how a resumed run ends
    # is test_train's business), so it is stopped there.
    t_restart = time.time()
    p, log = start()
    restored = f"Restoring states from the checkpoint path at {hpc}"
    ckpts = out / "checkpoints"

    def next_step_saved():
        return any(c.stat().st_mtime > t_restart for c in ckpts.glob("epoch=*-step=*.ckpt"))

    deadline = time.time() + 400
    log1 = tmp_path / "log1.txt"
    while p.poll() is None and time.time() < deadline:
        if restored in log1.read_text() and next_step_saved():
            time.sleep(2)  # let that checkpoint's write finish
            break
        time.sleep(0.05)
    p.kill()
    p.wait()
    log.close()
    assert restored in log1.read_text(), log1.read_text()[-3000:]
    new = sorted(
        (c for c in ckpts.glob("epoch=*-step=*.ckpt") if c.stat().st_mtime > t_restart),
        key=lambda c: c.stat().st_mtime,
    )
    assert new, "the resumed run saved no checkpoint"
    assert torch.load(new[0], weights_only=False)["global_step"] == saved_step + 1


def test_cpu_sbatch_script_has_tasks_and_no_gres():
    """--gpus-per-node 0 renders a CPU job (the local SLURM cluster in tests/test_slurm.py runs
    it): N tasks per node, no --gres line; one task per GPU stays the rule on GPUs."""
    from vat.launch import SbatchJob, render_sbatch

    text = render_sbatch(["strategy=ddp"], gpus_per_node=0, tasks_per_node=2, time="00:10:00")
    assert "#SBATCH --ntasks-per-node=2" in text and "--gres" not in text
    assert "1 node(s) x 2 CPU task(s)" in text
    with pytest.raises(ValueError, match="tasks per node"):
        SbatchJob(nodes=1, gpus_per_node=0, time="1:00:00")
    with pytest.raises(ValueError, match="one task per GPU"):
        SbatchJob(nodes=1, gpus_per_node=8, tasks_per_node=4, time="1:00:00")
    assert "#SBATCH --gres=gpu:8" in SbatchJob(nodes=1, gpus_per_node=8, time="1:00:00").header()


def test_walltime_signal_outside_fit_requeues_before_and_is_ignored_after(monkeypatch):
    """Under srun, SLURM's SIGUSR1 outside Trainer.fit must not kill the job: before fit rank 0
    requeues it (scontrol requeue <array job>_<task>), after fit it is ignored."""
    import subprocess as sp

    from vat.launch import walltime_signal_guard

    env = {"SLURM_NTASKS": "2", "SLURM_JOB_NAME": "vat", "SLURM_JOB_ID": "7",
           "SLURM_ARRAY_JOB_ID": "5", "SLURM_ARRAY_TASK_ID": "1", "SLURM_PROCID": "0"}  # fmt: skip
    calls = []
    monkeypatch.setattr(sp, "call", lambda cmd: calls.append(cmd) or 0)
    old = signal.getsignal(signal.SIGUSR1)
    try:
        assert walltime_signal_guard("before", env=env)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.1)
        assert calls == [["scontrol", "requeue", "5_1"]]
        assert walltime_signal_guard("after", env=env)
        os.kill(os.getpid(), signal.SIGUSR1)  # would end this process without the guard
        time.sleep(0.1)
        assert calls == [["scontrol", "requeue", "5_1"]]
        assert walltime_signal_guard("fit", env=env)  # the default, so Lightning adds its own
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
        assert not walltime_signal_guard("after", env={})  # not under srun: nothing installed
    finally:
        signal.signal(signal.SIGUSR1, old)
