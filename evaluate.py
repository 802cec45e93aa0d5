"""Score a model on the held-out scenario-action set: ``python evaluate.py model=... ``.

``python evaluate.py sweep_dir=<sweep dir>`` instead aggregates a finished sweep into its report.
"""

import hydra
from omegaconf import DictConfig

import vat.config  # noqa: F401  (registers the config schemas)
from vat.evaluate import evaluate
from vat.sweep.cell import run_cell


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    if cfg.get("sweep_dir"):
        from vat.report.sweep import build_sweep_report

        print(build_sweep_report(cfg.sweep_dir))
        return
    run_cell(evaluate, cfg)  # in a multirun: skip done cells, record status


if __name__ == "__main__":
    main()
