"""Score a model on the held-out scenario-action set: ``python evaluate.py model=... ``."""

import hydra
from omegaconf import DictConfig

import vat.config  # noqa: F401  (registers the config schemas)
from vat.evaluate import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
