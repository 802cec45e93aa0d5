"""Checks that run before any expensive work: the data, the target value, the model, one forward.

Everything here fails in seconds with a message naming what is wrong, instead of an hour into a
GPU job. The result is written to ``preflight.json`` in the run directory.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from omegaconf import DictConfig

from vat import values as V
from vat.data import ItemSet
from vat.models import as_spec, load

log = logging.getLogger(__name__)


def check_items(items: ItemSet, target: str) -> dict:
    """The held-out split covers every value and the target value has training pairs."""
    target = V.normalize_value(target)
    held = items.heldout()  # raises naming the values without a held-out scene
    train_pairs = items.train(target).pairs()
    if not train_pairs:
        raise ValueError(f"value={target}: the train split has no express/suppress pair for it")
    return {
        "target": target,
        "n_items": len(items),
        "n_scenes": len(items.scenes()),
        "n_heldout_items": len(held),
        "n_heldout_scenes": len(held.scenes()),
        "n_train_pairs_target": len(train_pairs),
        "n_dropped_rows": items.report.n_dropped if items.report else 0,
    }


@torch.inference_mode()
def check_model(model_cfg: DictConfig, items: ItemSet) -> dict:
    """The model and tokenizer load, and one held-out action gets a finite mean log-prob."""
    spec = as_spec(model_cfg)
    model, tok = load(spec, with_lora=False)
    item = items.heldout().items[0]
    enc = tok(f"{item.scenario}\n{item.action}", return_tensors="pt")
    logits = model(**enc).logits[0, :-1].float()
    logp = torch.log_softmax(logits, -1).gather(-1, enc["input_ids"][0, 1:, None]).mean().item()
    if not math.isfinite(logp):
        raise FloatingPointError(f"model {spec.name}: non-finite log-prob on a held-out item")
    return {
        "model": spec.name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tok),
        "chat_template": tok.chat_template is not None,
        "padding_side": tok.padding_side,
        "mean_logprob_first_heldout_item": logp,
    }


def preflight(cfg: DictConfig, items: ItemSet, out_dir: Path) -> dict:
    report = {"data": check_items(items, cfg.value.name), "model": check_model(cfg.model, items)}
    (out_dir / "preflight.json").write_text(json.dumps(report, indent=2))
    log.info("preflight passed: %s", json.dumps(report))
    return report
