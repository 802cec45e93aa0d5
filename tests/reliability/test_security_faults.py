"""Security: pickles load weights-only, remote code only on request (and loudly), secrets from the
environment never reach a file of the run."""

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.overrides import FAST

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "vat").rglob("*.py"), ROOT / "train.py", ROOT / "evaluate.py"])


# ------------------------------------------------------------------ (a) torch.load weights_only
def unsafe_loads(source: str, filename: str = "<src>") -> list[str]:
    """``file:line`` of every `torch.load` call (``torch.load``, ``torch.serialization.load``, a
    ``from torch import load``) that does not pass ``weights_only=True`` literally."""
    tree = ast.parse(source, filename)
    aliases = {"torch.load", "torch.serialization.load"}
    for node in ast.walk(tree):  # from torch import load [as x]
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "torch.serialization"):
            aliases |= {a.asname or a.name for a in node.names if a.name == "load"}
    bad = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name not in aliases:
            continue
        kw = {k.arg: k.value for k in node.keywords}
        w = kw.get("weights_only")
        if not (isinstance(w, ast.Constant) and w.value is True):
            bad.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return bad


def test_the_checker_catches_every_spelling_of_an_unsafe_load():
    src = "\n".join([
        "import torch", "from torch import load as tl", "from torch.serialization import load",
        "torch.load('a')", "torch.load('a', weights_only=False)", "torch.load('a', weights_only=w)",
        "tl('a')", "load('a')", "torch.serialization.load('a')", "torch.load('a', **kw)",
        "torch.load('a', weights_only=True)", "tl('a', map_location='cpu', weights_only=True)",
    ])  # fmt: skip
    assert [b.split(":")[1] for b in unsafe_loads(src)] == ["4", "5", "6", "7", "8", "9", "10"]


def test_every_torch_load_in_the_package_is_weights_only():
    bad = []
    for path in SOURCES:
        bad += unsafe_loads(path.read_text(), str(path.relative_to(ROOT)))
    assert not bad, "torch.load without weights_only=True runs code on load:\n" + "\n".join(bad)


# ------------------------------------------------------------------ (b) trust_remote_code
def test_trust_remote_code_is_off_for_every_shipped_model(compose_cfg):
    from vat.models import ModelSpec

    assert ModelSpec().trust_remote_code is False
    for path in sorted((ROOT / "conf" / "model").glob("*.yaml")):
        cfg = compose_cfg("evaluate", [f"model={path.stem}"])
        assert cfg.model.trust_remote_code is False, path.name


def test_remote_code_reaches_transformers_only_when_asked_and_is_warned_about(monkeypatch, caplog):
    """Fault: a config that turns remote code on. It is passed through (the user asked) and each
    load says so; off, transformers is told False explicitly (not left to its default)."""
    import transformers

    from vat.models import ModelSpec, load_model, load_tokenizer

    seen = []

    class Fake:
        pad_token = "x"

        def eval(self):
            return self

    def fake_from_pretrained(path, **kwargs):
        seen.append(kwargs["trust_remote_code"])
        return Fake()

    for cls in (transformers.AutoTokenizer, transformers.AutoModelForCausalLM):
        monkeypatch.setattr(cls, "from_pretrained", staticmethod(fake_from_pretrained))
    with caplog.at_level("WARNING", logger="vat.models.loading"):
        load_tokenizer(ModelSpec(name="m", pretrained="org/m"))
        load_model(ModelSpec(name="m", pretrained="org/m"))
        assert seen == [False, False] and not caplog.records
        load_tokenizer(ModelSpec(name="m", pretrained="org/m", trust_remote_code=True))
        load_model(ModelSpec(name="m", pretrained="org/m", trust_remote_code=True))
    assert seen[2:] == [True, True]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2 and all("trust_remote_code=true runs Python code" in w for w in warned)
    assert all("org/m" in w for w in warned)


# ------------------------------------------------------------------ (c) secrets never written
SECRETS = {
    "WANDB_API_KEY": "vat-fake-secret-0123456789abcdef",
    "HF_TOKEN": "hf_vatFakeToken0123456789abcdefABCDEF",
    "HUGGING_FACE_HUB_TOKEN": "hf_vatFakeHubToken0123456789abcdef",
}


def _files(*dirs: Path, since: float = 0.0):
    for d in dirs:
        for p in d.rglob("*") if d.is_dir() else []:
            if p.is_file() and not p.is_symlink() and p.stat().st_mtime >= since:
                yield p


@pytest.mark.slow
def test_secrets_in_the_environment_are_never_written(tmp_path):
    """Fault: API keys in the environment of a real ``train.py`` (W&B logger, offline) and
    ``evaluate.py`` run. No file the runs write (run dir with .hydra/, config.yaml, logs, CSV,
    checkpoints, HF export, W&B offline files; HOME; WANDB_DIR; TMPDIR; new cache entries) and neither
    console stream holds a secret. The checkpoints load with ``torch.load(weights_only=True)``."""
    import torch

    home, wandb_dir, tmp = tmp_path / "home", tmp_path / "wandb_dir", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = {**os.environ, **SECRETS, "HOME": str(home), "WANDB_DIR": str(wandb_dir),
           "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("WANDB_MODE", None)  # offline because the config says so, not the environment
    cache = Path(env["VAT_CACHE"])
    start = time.time() - 1
    train_dir, eval_dir = tmp_path / "train_run", tmp_path / "eval_run"
    fast = [o for o in FAST if not o.startswith("logger=")]
    runs = {
        "train.py": [*fast, "method=sft", "trainer.max_steps=2", "callbacks.vat.every_n_steps=2",
                     "logger=wandb", "logger.wandb.mode=offline", f"hydra.run.dir={train_dir}"],
        "evaluate.py": ["model=tiny", "intervention.shots=1", "metrics.n_bootstrap=50",
                        "metrics.n_permutations=50", "probe.progress=false",
                        f"hydra.run.dir={eval_dir}"],
    }  # fmt: skip
    consoles = {}
    for script, overrides in runs.items():
        proc = subprocess.run([sys.executable, script, *overrides], cwd=ROOT, env=env,
                              capture_output=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
        consoles[script] = proc.stdout + proc.stderr

    assert list(train_dir.glob("wandb/offline-run-*/*.wandb")), "W&B wrote no offline run"
    assert (train_dir / ".hydra" / "config.yaml").is_file() and (eval_dir / "vat.json").is_file()
    scanned = list(_files(train_dir, eval_dir, home, wandb_dir, tmp))
    scanned += list(_files(cache, since=start))
    assert len(scanned) > 20
    leaks = [
        f"{name} in {where}"
        for name, secret in SECRETS.items()
        for where, data in [*((str(p), p.read_bytes()) for p in scanned), *consoles.items()]
        if secret.encode() in data
    ]
    assert not leaks, leaks

    ckpts = sorted((train_dir / "checkpoints").glob("*.ckpt"))
    assert ckpts
    for ckpt in ckpts:  # what `trainer.fit(ckpt_path=...)` reads on resume
        state = torch.load(ckpt, weights_only=True, map_location="cpu")
        assert state["global_step"] == 2


def test_a_secret_interpolated_into_the_config_is_refused_without_printing_it(
    compose_cfg, monkeypatch
):
    """Fault: ``+note=${oc.env:HF_TOKEN}`` would put the token in config.yaml, .hydra/ and W&B's
    config. `setup` refuses before writing anything, naming the key and the variable only."""
    from vat.preflight import ConfigError
    from vat.run import setup

    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")  # a name with TOKEN in it: no secret
    cfg = compose_cfg("train", ["model=tiny", "+note=token ${oc.env:HF_TOKEN}"])
    with pytest.raises(ConfigError, match=r"note holds the value of \$HF_TOKEN") as e:
        setup(cfg)
    assert SECRETS["HF_TOKEN"] not in str(e.value)
    assert not os.path.exists(cfg.paths.output_dir)
