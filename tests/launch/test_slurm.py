"""`vat.launch.slurm`: Lightning's SLURMEnvironment from config, the walltime guard outside
`Trainer.fit`, and SIGUSR1 under a fake one-task SLURM job: hpc checkpoint, requeue, resume."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.launch.helpers import ROOT, fake_bin
from tests.overrides import FAST
from vat import launch as VL


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


def test_walltime_signal_checkpoints_and_requeues_after_the_step(tmp_path, monkeypatch):
    """`WalltimeRequeue`: SIGUSR1 inside a step is only noted; after that step the checkpoint is
    saved (hpc_ckpt_1.ckpt, the step after the signal), rank zero requeues the job and training
    stops as on SIGTERM. Lightning's own handler, which checkpoints inside the signal handler
    (mid-collective with several ranks: a 2-node job hung there), is left out."""
    import lightning as L
    from lightning.pytorch.demos.boring_classes import BoringModel
    from lightning.pytorch.plugins.environments import SLURMEnvironment
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import vat.launch.requeue as R

    for k, v in {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "vat",
                 "SLURM_JOB_ID": "4242", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                 "SLURM_NODEID": "0", "SLURM_NNODES": "1", "SLURM_NODELIST": "n1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    calls = []
    monkeypatch.setattr(R.subprocess, "call", lambda cmd: calls.append(cmd) or 0)

    class SignalAtStep2(L.Callback):
        def on_before_backward(self, trainer, *args):
            if trainer.global_step == 2:
                os.kill(os.getpid(), signal.SIGUSR1)  # in the middle of step 2

    requeue = R.WalltimeRequeue()
    trainer = L.Trainer(max_steps=6, accelerator="cpu", devices=1, logger=False,
                        plugins=[SLURMEnvironment(auto_requeue=True)],
                        callbacks=[SignalAtStep2(), requeue], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)  # fmt: skip
    old = signal.getsignal(signal.SIGUSR1)
    try:
        with pytest.raises(SIGTERMException):
            trainer.fit(BoringModel())
        assert signal.getsignal(signal.SIGUSR1) == requeue._on_signal  # not Lightning's
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert calls == [["scontrol", "requeue", "4242"]]
    assert requeue.saved == str(tmp_path / "hpc_ckpt_1.ckpt") and requeue.step == 3
    assert torch.load(tmp_path / "hpc_ckpt_1.ckpt", weights_only=False)["global_step"] == 3
