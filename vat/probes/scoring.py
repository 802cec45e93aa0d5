"""The batched scoring engine both probes share: token log-probabilities under a causal LM.

A request is a context and a continuation, as token ids. For each request the engine returns
log p(continuation | context), summed over the continuation's tokens, and optionally the
log-probabilities of a few *option* tokens at the end of the sequence (the next token after it),
which is what a Likert judgment reads.

Properties the probes rely on (and the tests check):
- **Batch invariance.** Padding is masked and position ids follow the real tokens, so a request's
  scores do not depend on the batch size or on its neighbours (equal within 1e-5 in fp32).
- **Length-sorted batches**, longest first: memory problems show on the first batch, and padding
  waste stays small.
- **Shared-prefix reuse.** Requests with the same `group` (e.g. the items of one scene) usually
  share a long token prefix (system prompt, few-shot examples, the scenario). The prefix is run
  once, its KV cache is repeated across the group's batch, and only the suffixes are run. The
  scores equal those without reuse (within float tolerance); it is a pure speed-up.
- **Distributed.** Inside a distributed job every rank scores a share of whole groups and gets all
  the scores back, in order, with the same number of forward passes on each rank
  (`vat.probes.distributed`).
- **Resumable.** Inside `journal(path)` each unit's scores are appended to a file as they are
  computed; a re-run after a crash reuses them (bit-identical) and scores only the rest.
- Tokenisation follows lm-evaluation-harness (`HFLM._encode_pair`): trailing spaces of the context
  move to the continuation, the continuation is ``encode(context + continuation)`` minus the
  context's tokens, and the model sees ``context_ids + continuation_ids``.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import inspect
import json
import logging
import os
from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from vat.probes import distributed as D

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Request:
    context: tuple[int, ...]
    continuation: tuple[int, ...] = ()
    group: Hashable = None  # requests of one group are candidates for prefix reuse


@dataclass
class Scores:
    logprob: np.ndarray  # (N,) float64: sum of log p(continuation token) over the continuation
    n_tokens: np.ndarray  # (N,) int: continuation length in tokens
    option_logprobs: np.ndarray | None = None  # (N, K): log p(option k) after the full sequence

    @property
    def mean_logprob(self) -> np.ndarray:
        """Per-token mean log-prob of the continuation (length-normalised)."""
        return self.logprob / np.maximum(self.n_tokens, 1)


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) the way lm-evaluation-harness splits them."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    ctx = tokenizer.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx) :]


def single_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The token id of each option label; every label must be exactly one token."""
    ids = []
    for label in labels:
        enc = tokenizer.encode(label, add_special_tokens=False)
        if len(enc) != 1:
            raise ValueError(
                f"option label {label!r} is {len(enc)} tokens under this tokenizer ({enc}); "
                "judgment options must be single tokens (use digits or letters)"
            )
        ids.append(enc[0])
    return ids


class _Unit:
    """Batches (request indices) run after one shared cached prefix of `prefix` tokens."""

    def __init__(self, prefix: int, batches: list[list[int]], fulls: list[list[int]]):
        self.prefix = prefix
        self.batches = batches
        self.size = sum(map(len, batches))
        self.forwards = len(batches) + (1 if prefix else 0)
        # tokens run: the prefix once, then each batch padded to its longest suffix
        self.cost = prefix + sum(len(b) * (max(len(fulls[i]) for i in b) - prefix) for b in batches)


class ScoreJournal:
    """Scores as they are computed, appended to a file: an evaluation killed half-way resumes.

    One JSON line per unit of work (a scene's batches, or one batch): the request hashes and their
    scores. Every request is hashed with its tokens and option ids, so an entry is reused only for
    the very same request; the file must belong to one model and one scorer setting (the caller
    keys its name by them). Floats are written with ``repr`` precision, so reused scores are
    bit-identical to freshly computed ones. A torn last line (killed mid-write) is ignored.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.entries: dict[str, tuple[float, list[float] | None]] = {}
        self.reused = 0
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    e = json.loads(line)
                    opts = e["opt"] or [None] * len(e["h"])
                    for h, lp, o in zip(e["h"], e["lp"], opts, strict=True):
                        self.entries[h] = (lp, o)
                except (ValueError, KeyError, TypeError):
                    continue  # the line a kill cut short

    def get(self, hashes: list[str]):
        if not all(h in self.entries for h in hashes):
            return None
        self.reused += len(hashes)
        return [self.entries[h] for h in hashes]

    def add(self, hashes: list[str], lp: np.ndarray, opt: np.ndarray | None) -> None:
        line = {"h": hashes, "lp": lp.tolist(), "opt": None if opt is None else opt.tolist()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")
            f.flush()
            os.fsync(f.fileno())


_JOURNAL: contextvars.ContextVar[ScoreJournal | None] = contextvars.ContextVar(
    "vat_score_journal", default=None
)


@contextmanager
def journal(path: str | Path | None) -> Iterator[ScoreJournal | None]:
    """Inside this block every `Scorer.score` (in a single process) reads and extends the
    journal at `path`; None turns journaling off."""
    j = ScoreJournal(path) if path is not None else None
    token = _JOURNAL.set(j)
    try:
        yield j
    finally:
        _JOURNAL.reset(token)


def _request_hash(full: list[int], ctx_len: int, option_ids) -> str:
    key = (tuple(full), ctx_len, None if option_ids is None else tuple(option_ids))
    return hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()


class Scorer:
    """Scores `Request`s under a causal LM (see the module docstring for the guarantees).

    Args:
        model: a Hugging Face causal LM (PEFT-wrapped is fine).
        batch_size: sequences per forward pass.
        padding_side: "left" (default: continuations right-aligned, so the LM head runs only on
            the trailing columns) or "right"; both give the same scores.
        reuse_prefix: run the shared token prefix of each request group once (KV cache).
        min_prefix: shortest shared prefix (tokens) worth reusing.
        autocast_dtype: None (the model's own dtype), "bfloat16" or "float16" autocast.
        pad_token_id: any valid id; padded positions are masked and never read.
    """

    def __init__(
        self,
        model,
        *,
        batch_size: int = 16,
        padding_side: str = "left",
        reuse_prefix: bool = True,
        min_prefix: int = 8,
        autocast_dtype: str | None = None,
        pad_token_id: int = 0,
        progress: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"probe.batch_size must be >= 1, got {batch_size}")
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if autocast_dtype is not None and autocast_dtype not in _DTYPES:
            raise ValueError(f"autocast_dtype must be one of {sorted(_DTYPES)} or null")
        self.model = model
        self.batch_size = batch_size
        self.padding_side = padding_side
        self.reuse_prefix = reuse_prefix
        self.min_prefix = max(2, min_prefix)
        self.autocast_dtype = autocast_dtype
        self.pad_token_id = pad_token_id
        self.progress = progress

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------------------ public
    # no_grad, not inference_mode: under DeepSpeed ZeRO-3 parameters gathered in inference mode
    # become inference tensors that the next training step cannot save for backward.
    @torch.no_grad()
    def score(
        self,
        requests: Sequence[Request],
        option_ids: Sequence[int] | None = None,
        desc: str = "scoring",
    ) -> Scores:
        """Scores of `requests`, in their order.

        In a distributed job (see `vat.probes.distributed`) every rank must call this with the
        same requests: each scores a share of whole units and every rank gets all the scores.
        """
        n = len(requests)
        fulls = [list(r.context) + list(r.continuation) for r in requests]
        for i, r in enumerate(requests):
            if not r.context:
                raise ValueError(f"request {i}: empty context")
            if not r.continuation and option_ids is None:
                raise ValueError(f"request {i}: empty continuation and no option tokens to read")
        out_lp = np.zeros(n, dtype=np.float64)
        out_opt = None if option_ids is None else np.zeros((n, len(option_ids)), dtype=np.float64)
        opt = None if option_ids is None else torch.tensor(list(option_ids), device=self.device)

        units = self._units(self._plan(requests, fulls), fulls)
        rank, world = D.rank_world() if D.sharding() else (0, 1)
        if world > 1:
            owner = D.assign([u.cost for u in units], world)
            mine = [u for u, r in zip(units, owner, strict=True) if r == rank]
        else:
            mine = units
        n_forwards = sum(u.forwards for u in mine)
        pad = 0
        if world > 1:
            # Same requests on every rank (else the shares overlap or miss some), and the same
            # number of forwards: pad the shorter shares (ZeRO-3 forwards are collective).
            info = D.gather((n, sum(map(len, fulls)), n_forwards))
            if len({i[:2] for i in info}) > 1:
                raise RuntimeError(
                    "distributed scoring: the ranks were given different requests "
                    f"((count, tokens) per rank: {[i[:2] for i in info]}); every rank must score "
                    "the same items with the same prompt"
                )
            pad = max(i[2] for i in info) - n_forwards
            log.info("%s: rank %d of %d scores %d of %d requests in %d forwards (+%d to keep step)",
                     desc, rank, world, sum(u.size for u in mine), n, n_forwards, pad)  # fmt: skip
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=sum(u.size for u in mine), desc=desc, unit="item",
                   disable=not self.progress or rank != 0, leave=False)  # fmt: skip
        jr = _JOURNAL.get() if world == 1 else None  # ranks > 1: no journal
        reused_before = jr.reused if jr is not None else 0
        try:
            for u in mine:
                if jr is not None:
                    members = [i for b in u.batches for i in b]
                    hashes = [_request_hash(fulls[i], len(requests[i].context), option_ids)
                              for i in members]  # fmt: skip
                    if (hit := jr.get(hashes)) is not None:
                        out_lp[members] = [lp for lp, _ in hit]
                        if out_opt is not None:
                            out_opt[members] = [o for _, o in hit]
                        bar.update(len(members))
                        continue
                cache = self._prefix_cache(fulls[u.batches[0][0]][: u.prefix]) if u.prefix else None
                for idx in u.batches:
                    lp, ol = self._run(
                        [fulls[i] for i in idx],
                        [len(requests[i].context) for i in idx],
                        u.prefix,
                        cache,
                        opt,
                    )
                    out_lp[idx] = lp
                    if out_opt is not None:
                        out_opt[idx] = ol
                    bar.update(len(idx))
                if jr is not None:
                    jr.add(hashes, out_lp[members], None if out_opt is None else out_opt[members])
            for _ in range(pad):
                self._dummy_forward()
        finally:
            bar.close()
            self.model.train(was_training)
        if world > 1:
            idx = [i for u in mine for b in u.batches for i in b]
            part = (idx, out_lp[idx], None if out_opt is None else out_opt[idx])
            for p_idx, p_lp, p_opt in D.gather(part):
                out_lp[p_idx] = p_lp
                if out_opt is not None:
                    out_opt[p_idx] = p_opt
        if jr is not None and jr.reused > reused_before:
            log.info("%s: %d item scores reused from %s (an interrupted run's)", desc,
                     jr.reused - reused_before, jr.path)  # fmt: skip
        n_tokens = np.array([len(r.continuation) for r in requests], dtype=np.int64)
        return Scores(out_lp, n_tokens, out_opt)

    # ---------------------------------------------------------------------------- internals
    def _plan(self, requests, fulls) -> list[tuple[int, list[int]]]:
        """[(cached prefix length, request indices)], each list sorted longest first.

        Within a group the cached prefix is the longest common token prefix of the group's
        contexts, minus one token: the suffix run then starts at the last context token, so every
        logit a request needs (from its last context token on) comes out of the suffix run.
        """
        plan: list[tuple[int, list[int]]] = []
        loose: list[int] = []
        groups: dict[Hashable, list[int]] = defaultdict(list)
        for i, r in enumerate(requests):
            if self.reuse_prefix and r.group is not None:
                groups[r.group].append(i)
            else:
                loose.append(i)
        for members in groups.values():
            k = _common_prefix_len([requests[i].context for i in members]) - 1
            if len(members) < 2 or k < self.min_prefix:
                loose.extend(members)
                continue
            members.sort(key=lambda i: -len(fulls[i]))
            plan.append((k, members))
        if loose:
            loose.sort(key=lambda i: -len(fulls[i]))
            plan.append((0, loose))
        # Longest work first, so an out-of-memory shows at once.
        plan.sort(key=lambda pm: -len(fulls[pm[1][0]]))
        return plan

    def _units(self, plan, fulls) -> list[_Unit]:
        """The plan as units of work a rank takes whole: a group with its cached prefix and all
        its batches (the prefix is run once), or one batch of loose requests."""
        units = []
        for k, members in plan:
            batches = [
                members[s : s + self.batch_size] for s in range(0, len(members), self.batch_size)
            ]
            if k:
                units.append(_Unit(k, batches, fulls))
            else:
                units.extend(_Unit(0, [b], fulls) for b in batches)
        return units

    def _dummy_forward(self) -> None:
        """A one-token forward that only keeps a rank in step with the others."""
        ids = torch.full((1, 1), self.pad_token_id, dtype=torch.long, device=self.device)
        kw = {"logits_to_keep": 1} if _supports_logits_to_keep(self.model) else {}
        with self._autocast():
            self.model(input_ids=ids, use_cache=False, **kw)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.autocast_dtype])

    def _prefix_cache(self, prefix: list[int]):
        ids = torch.tensor([prefix], device=self.device)
        with self._autocast():
            out = self.model(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache", None)
        return cache if cache is not None else out.past_key_values

    def _run(self, seqs, ctx_lens, k, cache, opt):
        """Forward the suffixes ``seq[k:]`` (after a cached prefix of k tokens) and read scores."""
        b = len(seqs)
        sufs = [s[k:] for s in seqs]
        width = max(map(len, sufs))
        ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        offsets = []  # column of each row's first real token
        for r, s in enumerate(sufs):
            off = width - len(s) if self.padding_side == "left" else 0
            ids[r, off : off + len(s)] = torch.tensor(s)
            mask[r, off : off + len(s)] = 1
            offsets.append(off)
        # Position of a real token = k + its index among the row's real tokens.
        pos = (k + (mask.cumsum(1) - 1).clamp(min=0)).to(self.device)
        full_mask = torch.cat([torch.ones((b, k), dtype=torch.long), mask], 1).to(self.device)
        kw = {}
        if cache is not None:
            kw[_cache_kwarg(self.model)] = _repeat_cache(cache, b)
        # Only the columns we read need the LM head (vocab-sized rows): from the earliest logit any
        # row needs to the end. With left padding continuations are right-aligned, so this is
        # just the longest continuation; the head and the log-softmax skip the whole context.
        first = min(off + c - 1 - k for c, off in zip(ctx_lens, offsets, strict=True))
        if _supports_logits_to_keep(self.model):
            kw["logits_to_keep"] = width - first
        else:
            first = 0
        with self._autocast():
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=full_mask, position_ids=pos, **kw
            ).logits
        offsets = [off - first for off in offsets]  # columns now count from `first`

        # Gather only the rows x columns we read, then one float32 log-softmax over them.
        rows, cols, targets, owner = [], [], [], []
        for r, (s, c, off) in enumerate(zip(seqs, ctx_lens, offsets, strict=True)):
            for p in range(c, len(s)):  # continuation token at full position p, logit at p - 1
                rows.append(r)
                cols.append(off + p - 1 - k)
                targets.append(s[p])
                owner.append(r)
        lp = np.zeros(b)
        if rows:
            sel = logits[torch.tensor(rows), torch.tensor(cols)].float().log_softmax(-1)
            tok_lp = sel.gather(1, torch.tensor(targets, device=sel.device)[:, None])[:, 0]
            sums = torch.zeros(b, dtype=torch.float64, device=sel.device)
            sums.index_add_(0, torch.tensor(owner, device=sel.device), tok_lp.double())
            lp = sums.cpu().numpy()
        ol = None
        if opt is not None:
            last = torch.tensor(
                [off + len(s) - 1 - k for s, off in zip(seqs, offsets, strict=True)]
            )
            ol = (
                logits[torch.arange(b), last].float().log_softmax(-1)[:, opt].double().cpu().numpy()
            )
        return lp, ol


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(map(len, seqs))
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def _supports_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV-cache argument `cache`; earlier 5.x `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _repeat_cache(cache, b: int):
    """A copy of a batch-1 KV cache repeated to batch b (the original stays reusable)."""
    c = copy.deepcopy(cache)
    if b > 1:
        c.batch_repeat_interleave(b)
    return c
