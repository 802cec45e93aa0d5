"""Offline, CPU-only test setup: no network, W&B offline, every cache under the repo's .cache/."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_CACHE = ROOT / ".cache" / "test"
# Set before transformers/datasets/wandb are imported: they read these at import time.
for key, val in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WANDB_MODE": "offline",
    "HF_HOME": str(_CACHE / "hf"),
    "VAT_CACHE": str(_CACHE / "vat"),
    "MPLCONFIGDIR": str(_CACHE / "mpl"),
    "WANDB_DIR": str(_CACHE / "wandb"),
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}.items():
    os.environ[key] = val

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import open_dict  # noqa: E402

import vat.config  # noqa: E402, F401  (registers schemas)
from tests.schwartz import SCHWARTZ  # noqa: E402

CONF = ROOT / "conf"


@pytest.fixture
def compose_cfg(tmp_path):
    """compose_cfg("train", ["model=tiny"]) -> the config as `train.py` would see it, run dir in tmp."""

    def _compose(config_name: str = "train", overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name, overrides=overrides or [], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(tmp_path / "run")
            cfg.hydra.runtime.cwd = str(ROOT)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]  # as under @hydra.main: the job's config has no hydra node
        return cfg

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture(scope="session")
def tiny_dir():
    """The tiny model's directory in the test cache (built on first use, about 5 s)."""
    from vat.models.tiny import tiny_model_dir

    return tiny_model_dir()


@pytest.fixture(scope="module")
def items():
    """The bundled item set (a module may define its own `items`, e.g. a data file path)."""
    from vat.data import BUNDLED, load_items

    return load_items(BUNDLED, SCHWARTZ)


@pytest.fixture(scope="session")
def train_prompt():
    """The training prompt as `conf/train.yaml` configures it (its ``prompt:`` node is the one home
    of the template, the chat-template switch and the length limit)."""
    from omegaconf import OmegaConf

    from vat.data.prompt import TrainPrompt

    return TrainPrompt(**OmegaConf.load(CONF / "train.yaml").prompt)


@pytest.fixture(scope="module")
def tok(tiny_dir):
    """The tiny model's tokenizer alone: datasets and collators never touch the model."""
    from vat.models import ModelSpec, load_tokenizer

    return load_tokenizer(ModelSpec(name="tiny", pretrained=str(tiny_dir)))
