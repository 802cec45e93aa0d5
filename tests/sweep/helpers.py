"""What the sweep tests share: the experiment presets and the config a multirun starts from."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
PRESETS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def compose_multirun(overrides, sweep_args=()):
    """The config a multirun starts from; ``sweep_args`` are command-line sweeps (a=x,y)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.overrides.task = [*overrides, *sweep_args]
        cfg.hydra.runtime.output_dir = "/tmp/vat-test-run"
    HydraConfig.instance().set_config(cfg)
    return cfg
