"""Align a model toward one Schwartz value: ``python train.py [-m] value=benevolence ...``."""

import hydra
from omegaconf import DictConfig

import vat.config  # noqa: F401  (registers the config schemas)
from vat.sweep.cell import run_cell
from vat.train import train


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    run_cell(train, cfg)  # in a multirun: skip done cells, resume started ones, record status


if __name__ == "__main__":
    main()
