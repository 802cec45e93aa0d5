"""A benchmark-only callback for bench_zero3.py: optimizer-step wall times and collective counts.

Per optimizer step (between two `on_train_batch_end` calls that advance ``global_step``, the VAT
evaluation at checkpoint steps included in the step that triggers it, and reported apart), and for
the whole fit, the number of DeepSpeed collectives by kind (all-gathers fetch ZeRO-3 partitions,
reduce-scatters and all-reduces carry gradients), counted on the communication backend object that
every DeepSpeed collective goes through (``deepspeed.comm.comm.cdb``). Rank zero writes a JSON.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import lightning as L

_KINDS = ("all_gather_into_tensor", "all_gather", "all_gather_coalesced", "all_reduce",
          "all_reduce_coalesced", "reduce_scatter_tensor", "broadcast")  # fmt: skip


class ZeroStats(L.Callback):
    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.counts: Counter = Counter()
        self.steps: list[dict] = []
        self._t = 0.0
        self._mark: Counter = Counter()

    def on_fit_start(self, trainer, pl_module) -> None:
        try:
            from deepspeed.comm import comm
        except ImportError:
            return
        backend = comm.cdb
        if backend is None:
            return
        for kind in _KINDS:
            fn = getattr(backend, kind, None)
            if fn is None:
                continue

            def counted(*a, _fn=fn, _kind=kind, **k):
                self.counts[_kind] += 1
                return _fn(*a, **k)

            setattr(backend, kind, counted)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self._t:
            self._t, self._mark = time.perf_counter(), Counter(self.counts)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop._should_accumulate():
            return
        now = time.perf_counter()
        self.steps.append({"step": trainer.global_step, "seconds": now - self._t,
                           "collectives": dict(self.counts - self._mark)})  # fmt: skip
        self._t, self._mark = now, Counter(self.counts)

    def on_fit_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.out.write_text(json.dumps({"steps": self.steps, "total": dict(self.counts)}))
