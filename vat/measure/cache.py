"""The measurement's caches: model identity, cached probe scores (the pre state), score journals.

The pre state (the base model under a probe) is cached on disk, keyed by model, held-out items,
probe settings, prompt and `SCORING_VERSION`, so training runs, their callback and evaluations of
the same base model share it. A journal keeps the item scores of one model while they are computed,
so a killed evaluation re-run reuses them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vat.cache import build_once, cache_dir
from vat.data import ItemSet
from vat.models import as_spec
from vat.probes import distributed as D
from vat.probes.base import ProbeResult, PromptContext, fingerprint
from vat.probes.scoring import SCORING_VERSION

log = logging.getLogger(__name__)


def items_fingerprint(items: ItemSet) -> str:
    return fingerprint(
        [(i.id, i.scene_id, i.micro_value, i.polarity, i.scenario, i.action) for i in items]
    )


def score_cached(probe, model, tokenizer, items: ItemSet, ctx: PromptContext | None, model_key: dict,
                 use_cache: bool = True) -> ProbeResult:  # fmt: skip
    """`probe.score(...)`, reusing a cached result for the same model, items, probe and prompt.

    In a distributed job every rank calls this: rank zero looks the entry up and hands it to all
    ranks; on a miss all ranks score (sharded) and rank zero alone writes the entry. The other
    ranks never touch the cache, so it need not be on a shared filesystem.
    """
    if not use_cache:
        return probe.score(model, tokenizer, items, ctx)
    # A cached entry is read back with this run's taxonomy: the one it was saved with may be a
    # file elsewhere (a user's own). Its labels enter the key, since prompts may show them.
    tax = items.taxonomy
    labels = [(v.label, v.goal) for v in tax.values] + [(m.label, m.gloss) for m in tax.micro]
    key = fingerprint(
        model_key, items_fingerprint(items), probe.config(), ctx.fingerprint() if ctx else None,
        SCORING_VERSION, labels,
    )  # fmt: skip
    target = cache_dir() / "states" / f"{probe.name}-{key}"
    if D.rank_world()[1] > 1:
        # No file lock across the collective scoring: a rank holding it while the others wait
        # on it would deadlock. The entry is renamed into place whole, so `exists` is enough.
        cached = D.broadcast(
            ProbeResult.load(target, tax) if D.is_rank_zero() and target.exists() else None
        )
        if cached is not None:
            log.info("pre state from cache: %s", target)
            return cached
        result = probe.score(model, tokenizer, items, ctx)
        if D.is_rank_zero():
            with build_once(target) as tmp:
                if tmp is not None:  # else another job wrote it meanwhile
                    result.save(tmp)
        return result
    with build_once(target) as tmp:
        if tmp is None:
            log.info("pre state from cache: %s", target)
            return ProbeResult.load(target, tax)
        result = probe.score(model, tokenizer, items, ctx)
        result.save(tmp)
    return result


def model_key(cfg_model) -> dict:
    spec = as_spec(cfg_model)
    return {
        k: getattr(spec, k)
        for k in ("name", "pretrained", "build", "build_args", "revision", "dtype")
    }


def journal_path(model_id, probe) -> Path:
    """Where the item scores of one model under one probe setting are journaled while they are
    computed (`vat.probes.scoring.journal`): a killed evaluation re-run reuses them."""
    return (
        cache_dir()
        / "journal"
        / f"{probe.name}-{fingerprint(model_id, probe.config(), SCORING_VERSION)}.jsonl"
    )


def post_model_id(path: str) -> dict:
    """A post model's identity for the journal: its path and the name, size and mtime of its files."""
    p = Path(path).expanduser().resolve()
    files = sorted((str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns)
                   for f in p.rglob("*") if f.is_file())  # fmt: skip
    return {"post_model": str(p), "files": files}
