"""One run of the GPU smoke test: ``train.py`` (same config, same overrides) plus a ``smoke.json`` in
the run dir with the peak GPU memory, the wall time and the outcome; `launch/gpu_smoke.sh` runs it
once per strategy and prints the table (``python -m vat.launch smoke-report``). Runs on CPU too
(no memory figures), which is how the tests exercise it.
"""

import json
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `vat` from this checkout, installed or not

import vat.config  # noqa: E402, F401  (registers the config schemas)
from vat.train import train  # noqa: E402


@hydra.main(version_base="1.3", config_path=str(ROOT / "conf"), config_name="train")
def main(cfg: DictConfig) -> None:
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    status = "failed"
    try:
        train(cfg)
        status = "ok"
    finally:
        gib = 2**30
        record = {
            "status": status,
            "wall_s": time.perf_counter() - t0,
            "strategy": cfg.strategy.get("_target_") or cfg.strategy.get("name"),
            "zero_stage": (cfg.strategy.get("config") or {})
            .get("zero_optimization", {})
            .get("stage"),
            "precision": str(cfg.trainer.precision),
            "device": torch.cuda.get_device_name() if cuda else "cpu",
            "peak_mem_allocated_gib": torch.cuda.max_memory_allocated() / gib if cuda else None,
            "peak_mem_reserved_gib": torch.cuda.max_memory_reserved() / gib if cuda else None,
        }
        out = Path(cfg.paths.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "smoke.json").write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
