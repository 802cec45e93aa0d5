"""Distributed training on CPU processes, for tests only.

Lightning's `DeepSpeedStrategy` refuses anything but CUDA; `CPUDeepSpeedStrategy` drops that check so
ZeRO-2 and ZeRO-3 run on CPU processes over gloo, with DeepSpeed's CPU accelerator. Select it with
``strategy=deepspeed_zero3 strategy._target_=tests.distributed.CPUDeepSpeedStrategy`` and
``trainer.accelerator=cpu``, with the repository root on PYTHONPATH and ``DS_ACCELERATOR=cpu`` in the
environment (DeepSpeed reads it when first imported).
"""

from __future__ import annotations

import argparse
import importlib

from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.strategies import DDPStrategy

from vat.strategies import DeepSpeedStrategy

# DeepSpeed compiles a shared-memory allreduce op on its first CPU run (35-45 s); without it, it
# falls back to plain gloo collectives, which is all the tests need.
# (`deepspeed.comm.torch` as an attribute is the torch package itself: patch the module.)
importlib.import_module("deepspeed.comm.torch").build_shm_op = lambda: None


class CPUDeepSpeedStrategy(DeepSpeedStrategy):
    """`DeepSpeedStrategy` on CPU processes (gloo): the same engine, config and checkpoints."""

    def setup_environment(self) -> None:
        DDPStrategy.setup_environment(self)  # the parent's, minus its CUDA-only check

    def setup_distributed(self) -> None:
        # The parent also checks that device indices match local ranks: CPU devices have none.
        reset_seed()
        self.set_world_ranks()
        self._init_deepspeed_distributed()

    def _setup_model_and_optimizer(self, model, optimizer, lr_scheduler=None):
        # The parent passes the root device's index as DeepSpeed's device rank: None on CPU.
        import deepspeed

        engine, optimizer, _, _ = deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank),
            config=self.config,
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            dist_init_required=False,
        )
        return engine, optimizer
