"""The offline test model: a small Llama built from config with a BPE tokenizer trained locally.

Nothing is downloaded. The tokenizer is a byte-level BPE (so any text encodes, no unknown tokens)
trained with the `tokenizers` library on the default taxonomy (its definition and its bundled
items) and the prompt words (byte-level: any other taxonomy's text encodes too);
the weights are a seeded random initialisation. The same arguments give byte-identical files, built
once into the cache and loaded with `from_pretrained` afterwards.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path

import torch

from vat.cache import build_once, cache_dir
from vat.data.readers import bundled_path
from vat.taxonomy import load_taxonomy

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
# ChatML, the template SmolLM2 and Qwen use, so the chat path is exercised by the tiny model too.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Words the prompt templates use, so they tokenize compactly (byte-level BPE encodes anything anyway).
_PROMPT_WORDS = [
    "Scenario:", "Action:", "Answer:", "Rating:", "Value:", "You are a helpful assistant.",
    "How appropriate is this action in this situation?", "Answer with a single number from 1 to 5.",
    "1 2 3 4 5 6 7 8 9 10", "A B", "Which action is better?", "I value", "because it shows",
]  # fmt: skip


def _corpus() -> list[str]:
    lines = list(_PROMPT_WORDS)
    for tax in (load_taxonomy(),):  # the corpus, and so the tiny model, stay fixed
        for m in tax.micro:
            v = tax.value(m.value)
            lines.append(f"{m.label}: {m.gloss}. {v.label}: {v.goal}.")
        path = bundled_path(tax) if tax.data else None
        if path is not None and path.is_file():
            for row in map(json.loads, path.read_text(encoding="utf-8").splitlines()):
                lines += [row["scenario"], row["action"]]
    return lines


def train_tokenizer(vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` trained on the local corpus (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        bos_token="<|endoftext|>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


def build_tiny(
    out_dir: str | Path,
    *,
    vocab_size: int = 4096,
    hidden_size: int = 128,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 352,
    max_positions: int = 1024,
    seed: int = 0,
) -> Path:
    """Build the tiny Llama and its tokenizer into `out_dir` (loadable with `from_pretrained`)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tokenizer = train_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_model_dir(**kwargs) -> Path:
    """The cached tiny model for these `build_tiny` arguments, building it on first use. The
    cache key is the full set of arguments, defaults filled in: ``tiny_model_dir()`` and
    ``tiny_model_dir(hidden_size=128)`` are the same model in the same directory."""
    bound = inspect.signature(build_tiny).bind(None, **kwargs)
    bound.apply_defaults()
    args = {k: v for k, v in bound.arguments.items() if k != "out_dir"}
    corpus = hashlib.sha256("\n".join(_corpus()).encode()).hexdigest()
    key = hashlib.sha256(json.dumps([sorted(args.items()), corpus]).encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"tiny-{key}"
    with build_once(target) as tmp:
        if tmp is not None:
            build_tiny(tmp, **kwargs)
    return target
