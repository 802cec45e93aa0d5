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
import functools
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


# The scorer's arithmetic: bump it when a change moves scores, even by float noise (another batch
# layout, another reduction order). It is part of the cache keys of scored states and journals, so
# a cached pre state is never compared with a post state scored by other arithmetic (a LoRA
# adapter at init must give a gain of exactly 0).
SCORING_VERSION = 2


@dataclass
class _Prefix:
    """A cached shared prefix: row `row` of `cache` (a batched prefix forward, left-padded),
    `valid` marking its real positions (None: every position, a prefix run alone)."""

    cache: object
    row: int = 0
    valid: torch.Tensor | None = None

    def past_mask(self, k: int, b: int) -> torch.Tensor:
        """(b, cache length) attention mask of the cached positions."""
        if self.valid is None:
            return torch.ones((b, k), dtype=torch.long)
        return self.valid.long()[None].expand(b, -1)


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


_Row = list[tuple[tuple[int, ...], list[int]]]  # segments: (context, member requests)


class _Unit:
    """Batches (request indices) run after one shared cached prefix of `prefix` tokens.

    With `packed`, each batch runs as packed segments (`Scorer._run_packed`): every distinct context
    once, then its requests' continuations, no padding between them.
    """

    def __init__(self, prefix: int, batches: list[list[int]], fulls: list[list[int]],
                 layouts: list[tuple[list[_Row], int]] | None = None):  # fmt: skip
        self.prefix = prefix
        self.batches = batches
        self.layouts = layouts  # per batch, packed: (rows, width) from `_layout`, planned once
        self.packed = layouts is not None
        self.size = sum(map(len, batches))
        # token positions run: the prefix once, then each batch (padded rows, or packed rows)
        self.cost = prefix
        for j, b in enumerate(batches):
            if self.packed:
                rows, width = layouts[j]
                self.cost += len(rows) * width
            else:
                self.cost += len(b) * max(len(fulls[i]) - prefix for i in b)


def _layout(batch, fulls, ctx_lens, k: int, hidden: int = 1024) -> tuple[list[_Row], int]:
    """How a batch packs after a cached prefix of k tokens: (rows, width).

    A row is a list of segments (context, members): the context's tokens after the prefix, then
    the continuation of each member (requests with that context), in order. Tried for each row
    width between the longest single request (context after the prefix + continuation) and three
    times that, two first-fit-decreasing packings (`_fill`): whole segments (a context with all
    its requests, cut only where longer than the row), and request by request (a request joins
    its context's segment in the first row with room, else opens a new segment repeating the
    context). The cheapest wins: positions (rows x width) times 1 + (k + width) / (6 hidden),
    the attention over the prefix and the whole row that each position adds to its ~12 hidden^2
    weight FLOPs per layer (the mask makes attention dense over the row).
    """
    families: dict[tuple[int, ...], list[int]] = {}
    for i in batch:
        families.setdefault(tuple(fulls[i][: ctx_lens[i]]), []).append(i)
    conts = {i: len(fulls[i]) - ctx_lens[i] for i in batch}
    fams = [(ctx, sorted(members, key=lambda i: -conts[i])) for ctx, members in families.items()]
    fams.sort(key=lambda f: -(len(f[0]) - k + sum(conts[i] for i in f[1])))
    longest = max(len(fulls[i]) - k for i in batch)
    best: tuple[float, list[_Row], int] | None = None
    for width in range(longest, 3 * longest + 1, max(1, longest // 24)):
        for whole in (True, False):
            rows = _fill(fams, conts, k, width, whole)
            cost = len(rows) * width * (1 + (k + width) / (6 * hidden))
            if best is None or cost < best[0]:
                best = (cost, rows, width)
    return best[1], best[2]


def _fill(fams, conts, k: int, width: int, whole: bool) -> list[_Row]:
    """First-fit decreasing of `fams` [(context, members longest first)] into rows of `width`."""
    rows: list[_Row] = []
    used: list[int] = []

    def place(ctx, members, n) -> None:
        for r in range(len(rows)):
            if used[r] + n <= width:
                rows[r].append((ctx, members))
                used[r] += n
                return
        rows.append([(ctx, members)])
        used.append(n)

    if whole:
        segs = []
        for ctx, members in fams:
            m = len(ctx) - k
            n, cur = m, []
            for i in members:
                if cur and n + conts[i] > width:
                    segs.append((n, ctx, cur))
                    n, cur = m, []
                n += conts[i]
                cur.append(i)
            segs.append((n, ctx, cur))
        for n, ctx, members in sorted(segs, key=lambda g: -g[0]):
            place(ctx, members, n)
        return rows
    for ctx, members in fams:
        for i in members:
            for r, row in enumerate(rows):  # this context's segment in a row with room
                seg = next((g for g in row if g[0] is ctx), None)
                if seg is not None and used[r] + conts[i] <= width:
                    seg[1].append(i)
                    used[r] += conts[i]
                    break
            else:
                place(ctx, [i], len(ctx) - k + conts[i])
    return rows


def _balanced(members: list[int], size: int) -> list[list[int]]:
    """`members` cut, in order, into the fewest batches of at most `size`, as equal as possible
    (20 at size 16 gives 10 + 10, not 16 + 4: no tiny, inefficient last batch)."""
    n_batches = -(-len(members) // size)
    base, extra = divmod(len(members), n_batches)
    out, s = [], 0
    for j in range(n_batches):
        e = s + base + (1 if j < extra else 0)
        out.append(members[s:e])
        s = e
    return out


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

        ctx_lens = [len(r.context) for r in requests]
        # What a packed forward runs of each request: all of it, or, when no option token is read
        # after it, all but the last continuation token (it predicts nothing that is read;
        # lm-evaluation-harness drops it too). Batches are planned on these lengths.
        runs = (
            fulls
            if opt is not None
            else [_drop_last(f, c) for f, c in zip(fulls, ctx_lens, strict=True)]
        )
        units = self._units(self._plan(requests, fulls), runs, ctx_lens)
        rank, world = D.rank_world() if D.sharding() else (0, 1)
        if world > 1:
            owner = D.assign([u.cost for u in units], world)
            mine = [u for u, r in zip(units, owner, strict=True) if r == rank]
        else:
            mine = units
        n_forwards = sum(len(u.batches) for u in mine)
        n_forwards += sum(1 for c in self._prefix_chunks(mine, fulls) if c[0].prefix)
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
            todo, hashes = [], {}
            for j, u in enumerate(mine):
                if jr is not None:
                    members = [i for b in u.batches for i in b]
                    hashes[j] = [_request_hash(fulls[i], len(requests[i].context), option_ids)
                                 for i in members]  # fmt: skip
                    if (hit := jr.get(hashes[j])) is not None:
                        out_lp[members] = [lp for lp, _ in hit]
                        if out_opt is not None:
                            out_opt[members] = [o for _, o in hit]
                        bar.update(len(members))
                        continue
                todo.append(j)
            by_unit = {id(mine[j]): j for j in todo}
            # The prefix chunks of the whole plan, journaled units included: a chunk's prefixes
            # run in one padded forward, so the same chunks give bit-identical scores whether or
            # not a re-run skips some of their units.
            for chunk in self._prefix_chunks(mine, fulls):
                if not any(id(u) in by_unit for u in chunk):
                    continue
                prefixes = self._prefix_caches([fulls[u.batches[0][0]][: u.prefix] for u in chunk])
                for u, prefix in zip(chunk, prefixes, strict=True):
                    if id(u) not in by_unit:
                        continue  # its scores came from the journal
                    for j, idx in enumerate(u.batches):
                        lp, ol = self._run(u, j, prefix, fulls, runs, ctx_lens, opt)
                        out_lp[idx] = lp
                        if out_opt is not None:
                            out_opt[idx] = ol
                        bar.update(len(idx))
                    if jr is not None:
                        members = [i for b in u.batches for i in b]
                        jr.add(hashes[by_unit[id(u)]], out_lp[members],
                               None if out_opt is None else out_opt[members])  # fmt: skip
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
            # Requests with the same context stay together (a batch runs a shared context once),
            # longest first.
            by_ctx: dict[tuple[int, ...], list[int]] = defaultdict(list)
            for i in members:
                by_ctx[requests[i].context].append(i)
            fams = [sorted(f, key=lambda i: -len(fulls[i])) for f in by_ctx.values()]
            fams.sort(key=lambda f: -len(fulls[f[0]]))
            plan.append((k, [i for f in fams for i in f]))
        if loose:
            loose.sort(key=lambda i: -len(fulls[i]))
            plan.append((0, loose))
        # Longest work first, so an out-of-memory shows at once.
        plan.sort(key=lambda pm: -len(fulls[pm[1][0]]))
        return plan

    def _units(self, plan, fulls, ctx_lens) -> list[_Unit]:
        """The plan as units of work a rank takes whole: a group with its cached prefix and all
        its batches (the prefix is run once), or one batch of loose requests. Batches are cut
        balanced (see `_balanced`), or, packed, by `_packed_batches`."""
        units = []
        for k, members in plan:
            if k and self._can_pack():
                batches, layouts = self._packed_batches(members, fulls, ctx_lens, k)
                units.append(_Unit(k, batches, fulls, layouts))
            elif k:
                units.append(_Unit(k, _balanced(members, self.batch_size), fulls))
            else:
                batches = _balanced(members, self.batch_size)
                units.extend(_Unit(0, [b], fulls) for b in batches)
        return units

    def _packed_batches(self, members, fulls, ctx_lens, k):
        """A group's requests (ordered by context) cut into packed batches, as few as the memory
        of `batch_size` unpacked sequences allows: a batch's packed rows hold no more token
        positions, and their KV cache (prefix included) no more positions, than `batch_size`
        sequences as long as the group's longest would. A context's requests stay together unless
        they alone exceed that; then they are cut into batches of `batch_size`. Returns the
        batches and their layouts (each computed once: the run uses it as planned)."""
        budget = self.batch_size * max(len(fulls[i]) for i in members)
        families: list[list[int]] = []
        for i in members:
            ctx = fulls[i][: ctx_lens[i]]
            if families and ctx == fulls[families[-1][0]][: ctx_lens[families[-1][0]]]:
                families[-1].append(i)
            else:
                families.append([i])

        hidden = _hidden_size(self.model)
        layouts: dict[tuple[int, ...], tuple[list[_Row], int]] = {}

        def fits(batch: list[int]) -> bool:
            key = tuple(batch)
            if key not in layouts:
                layouts[key] = _layout(batch, fulls, ctx_lens, k, hidden)
            rows, width = layouts[key]
            return len(rows) * width <= budget and len(rows) * (k + width) <= budget

        def join(fams: list[list[int]]) -> list[int]:
            return [i for f in fams for i in f]

        # Each batch: the most consecutive contexts that fit (binary search on how many).
        batches: list[list[int]] = []
        j = 0
        while j < len(families):
            if fits(join(families[j:])):  # the usual case: the rest of the group in one batch
                batches.append(join(families[j:]))
                break
            if not fits(families[j]):  # one context with more continuations than fit
                batches.extend(_balanced(families[j], self.batch_size))
                j += 1
                continue
            lo, hi = j + 1, len(families)
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(join(families[j:mid])):
                    lo = mid
                else:
                    hi = mid - 1
            batches.append(join(families[j:lo]))
            j = lo
        for b in batches:
            fits(b)  # a context cut by `_balanced` has no layout yet
        return batches, [layouts[tuple(b)] for b in batches]

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

    def _prefix_chunks(self, units: list[_Unit], fulls) -> list[list[_Unit]]:
        """Consecutive units whose shared prefixes run in one forward (a prefix alone is a
        forward of a few dozen tokens, which a CPU runs at a fraction of its matmul speed): at
        most `batch_size` of them, padded to the longest, within the positions of `batch_size`
        sequences as long as the longest of their requests. A unit without a prefix is a chunk of
        its own (no prefix forward); models whose attention takes no custom mask (e.g. flash
        attention) run each prefix alone."""
        chunks: list[list[_Unit]] = []
        budget = 0
        for u in units:
            longest = max(len(fulls[i]) for b in u.batches for i in b)
            if chunks and u.prefix and chunks[-1][0].prefix and self._can_pack():
                cand = chunks[-1] + [u]
                cap = self.batch_size * max(budget, longest)
                if len(cand) <= self.batch_size and len(cand) * max(c.prefix for c in cand) <= cap:
                    chunks[-1] = cand
                    budget = max(budget, longest)
                    continue
            chunks.append([u])
            budget = longest
        return chunks

    def _prefix_caches(self, prefixes: list[list[int]]) -> list[_Prefix | None]:
        """The KV caches of shared prefixes, run in one forward (left-padded when several)."""
        if not prefixes[0]:
            return [None] * len(prefixes)
        # no logit of a prefix is read: the LM head runs on one position, not all of them
        kw = {"logits_to_keep": 1} if _supports_logits_to_keep(self.model) else {}
        if len(prefixes) == 1:
            ids = torch.tensor(prefixes, device=self.device)
            with self._autocast():
                out = self.model(input_ids=ids, use_cache=True, **kw)
            return [_Prefix(_cache_of(out))]
        width = max(map(len, prefixes))
        ids = torch.full((len(prefixes), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prefixes), width), dtype=torch.long)
        for r, pre in enumerate(prefixes):
            ids[r, width - len(pre) :] = torch.tensor(pre, dtype=torch.long)
            mask[r, width - len(pre) :] = 1
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        with self._autocast():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=pos.to(self.device), use_cache=True, **kw)  # fmt: skip
        cache = _cache_of(out)
        return [_Prefix(cache, r, mask[r].bool()) for r in range(len(prefixes))]

    def _padded(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(ids, mask, column of each row's first real token) of `seqs` padded to one width."""
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        offsets = []
        for r, s in enumerate(seqs):
            off = width - len(s) if self.padding_side == "left" else 0
            ids[r, off : off + len(s)] = torch.tensor(s, dtype=torch.long)
            mask[r, off : off + len(s)] = 1
            offsets.append(off)
        return ids, mask, offsets

    def _can_pack(self) -> bool:
        """Packed batches need a custom 4D attention mask: SDPA or eager attention."""
        return _attn_implementation(self.model) in ("sdpa", "eager")

    def _run_padded(self, seqs, ctx_lens, k, prefix, opt):
        """The suffixes ``seq[k:]``, one row each, padded to the longest."""
        b = len(seqs)
        ids, mask, offsets = self._padded([s[k:] for s in seqs])
        width = ids.shape[1]
        # Position of a real token = k + its index among the row's real tokens.
        pos = (k + (mask.cumsum(1) - 1).clamp(min=0)).to(self.device)
        kw = {}
        if prefix is not None:
            past = prefix.past_mask(k, b)
            kw[_cache_kwarg(self.model)] = _repeat_cache(prefix, b)
        else:
            past = torch.ones((b, 0), dtype=torch.long)
        full_mask = torch.cat([past, mask], 1).to(self.device)
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
        # logit read for the token at full position p of row r: [r, off_r + p - 1 - k - first]
        cont, last = [], []
        for r, (s, c, off) in enumerate(zip(seqs, ctx_lens, offsets, strict=True)):
            col = off - k - first
            cont.append((r, range(col + c - 1, col + len(s) - 1)))
            last.append((r, col + len(s) - 1))
        return self._read(logits, seqs, ctx_lens, cont, last, opt)

    def _run(self, u: _Unit, j: int, prefix, fulls, runs, ctx_lens, opt):
        """Forward batch `j` of unit `u` (after its cached `_Prefix`, or None) and read scores."""
        idx = u.batches[j]
        if u.packed and prefix is not None:
            return self._run_packed(fulls, runs, ctx_lens, idx, u.layouts[j], u.prefix, prefix, opt)
        return self._run_padded([fulls[i] for i in idx], [ctx_lens[i] for i in idx], u.prefix,
                                prefix, opt)  # fmt: skip

    def _run_packed(self, fulls, runs, ctx_lens, idx, layout, k, prefix, opt):
        """The batch as packed segments on top of the cached prefix, with a tree attention mask.

        A segment is one distinct context's tokens after the prefix, run once, followed by the
        continuations of requests with that context; segments are packed into rows (`_layout`).
        Every token attends to the prefix, to its context's tokens up to itself and, in a
        continuation, causally to that continuation; its position id is its position in its own
        sequence. So each request sees exactly its own sequence, as if run alone, while a
        shared context runs once and no position is spent on padding between sequences. Logits
        are computed only at the positions read (a boolean ``logits_to_keep``): the last context
        token (shared by the requests of that context) and every continuation token but the last.
        The last continuation token is not run at all unless option tokens are read after it (it
        predicts nothing else; lm-evaluation-harness drops it too).

        `idx`: the batch's request indices into `fulls` (whole sequences, what is read), `runs`
        (what is run) and `ctx_lens`; `layout`: its planned `_layout` over `runs`.
        """
        local = {i: r for r, i in enumerate(idx)}  # the layout names requests by their index
        full = [fulls[i] for i in idx]
        seqs = [runs[i] for i in idx]
        ctx_lens = [ctx_lens[i] for i in idx]
        n_cont = [len(s) - c for s, c in zip(full, ctx_lens, strict=True)]
        rows_of, width = layout
        n_rows = len(rows_of)
        ids = torch.full((n_rows, width), self.pad_token_id, dtype=torch.long)
        pos = torch.zeros((n_rows, width), dtype=torch.long)
        past = prefix.past_mask(k, 1)[0].bool()  # the cached positions (left padding: some not)
        kv = len(past)
        allow = torch.zeros((n_rows, width, kv + width), dtype=torch.bool)
        allow[:, :, :kv] = past  # the prefix; padding attends to it too (no empty softmax rows)
        keep = torch.zeros((n_rows, width), dtype=torch.bool)
        tril = torch.ones((width, width), dtype=torch.bool).tril()
        # per request: the (row, column) of the logits that predict its continuation tokens, in
        # order, then (option tokens read) of the logits after its last token
        at: list[list[tuple[int, int]]] = [[] for _ in seqs]
        for row, members in enumerate(rows_of):
            col = 0
            for ctx, reqs in members:
                m0, m = col, len(ctx) - k
                ids[row, m0 : m0 + m] = torch.tensor(ctx[k:], dtype=torch.long)
                pos[row, m0 : m0 + m] = torch.arange(k, k + m)
                allow[row, m0 : m0 + m, kv + m0 : kv + m0 + m] = tril[:m, :m]
                keep[row, m0 + m - 1] = True  # predicts every member's first continuation token
                col += m
                for r in (local[i] for i in reqs):
                    c, t = ctx_lens[r], len(seqs[r]) - ctx_lens[r]
                    ids[row, col : col + t] = torch.tensor(seqs[r][c:], dtype=torch.long)
                    pos[row, col : col + t] = torch.arange(c, c + t)
                    allow[row, col : col + t, kv + m0 : kv + m0 + m] = True
                    allow[row, col : col + t, kv + col : kv + col + t] = tril[:t, :t]
                    keep[row, col : col + t] = True
                    at[r] = [(row, m0 + m - 1)] + [(row, col + j) for j in range(t)]
                    col += t
        if _attn_implementation(self.model) == "sdpa":
            mask4 = allow[:, None]
        else:  # eager attention adds the mask to the scores
            dtype = next(self.model.parameters()).dtype
            neg = torch.finfo(dtype).min
            mask4 = torch.zeros(allow.shape, dtype=dtype).masked_fill_(~allow, neg)[:, None]
        kw = {_cache_kwarg(self.model): _repeat_cache(prefix, n_rows)}
        if _supports_logits_to_keep(self.model) and _bool_logits_to_keep():
            kw["logits_to_keep"] = keep.to(self.device)
        with self._autocast():
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask4.to(self.device),
                position_ids=pos.to(self.device), **kw,
            ).logits  # fmt: skip
        if logits.dim() == 2 and logits.shape[0] == int(keep.sum()):
            # (kept positions, V) in row-major order: the index of (row, col) is its rank
            rank = (keep.flatten().cumsum(0) - 1).view(n_rows, width).tolist()
            flat = [[rank[row][col] for row, col in a] for a in at]
            cont = [(None, f[:n]) for f, n in zip(flat, n_cont, strict=True)]
            last = [(None, f[-1]) for f in flat]
        else:  # a model or transformers version that computed every position
            cont = [(a[0][0], [col for _, col in a[:n]]) for a, n in zip(at, n_cont, strict=True)]
            last = [a[-1] for a in at]
        return self._read(logits, full, ctx_lens, cont, last, opt)

    def _read(self, logits, seqs, ctx_lens, cont, last, opt):
        """Scores from the logits: `cont[r]` = (row, columns) of the logits that predict request
        r's continuation tokens, in order; `last[r]` = (row, column) of the logits after its whole
        sequence. Rows are None when `logits` is already flat ((kept positions, V), every one of
        them read). One float32 log-softmax over the rows read (the arithmetic of lm-eval, whose
        scores ours then match to ~1e-7), sums in float64."""
        b = len(seqs)
        dev = logits.device
        flat = logits.dim() == 2
        if flat:
            lsm_all = logits.float().log_softmax(-1)  # every kept row is read: no gather first

        def rows_lsm(pairs):
            """The log-softmax rows at (row, column) `pairs`."""
            cols = torch.tensor([c for _, c in pairs], device=dev)
            if flat:
                return lsm_all[cols]
            rows = torch.tensor([r for r, _ in pairs], device=dev)
            return logits[rows, cols].float().log_softmax(-1)

        pairs, owner, targets = [], [], []
        for r, ((row, cols), s, c) in enumerate(zip(cont, seqs, ctx_lens, strict=True)):
            pairs += [(row, col) for col in cols]
            owner += [r] * (len(s) - c)
            targets += s[c:]
        lp = np.zeros(b)
        if pairs:
            tgt = torch.tensor(targets, device=dev)
            if flat:  # pick the target entries directly, no copy of whole rows
                cols = torch.tensor([c for _, c in pairs], device=dev)
                tok_lp = lsm_all[cols, tgt]
            else:
                tok_lp = rows_lsm(pairs).gather(1, tgt[:, None])[:, 0]
            sums = torch.zeros(b, dtype=torch.float64, device=dev)
            sums.index_add_(0, torch.tensor(owner, device=dev), tok_lp.double())
            lp = sums.cpu().numpy()
        ol = None
        if opt is not None:
            ol = rows_lsm(last)[:, opt].double().cpu().numpy()
        return lp, ol


def _common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(map(len, seqs))
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def _drop_last(seq: list[int], ctx_len: int) -> list[int]:
    """`seq` without its last continuation token (as it is when the continuation is empty)."""
    return seq[:-1] if len(seq) > ctx_len else seq


def _supports_logits_to_keep(model) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(base.forward).parameters


@functools.cache
def _bool_logits_to_keep() -> bool:
    """Whether this transformers takes a boolean (batch, length) ``logits_to_keep`` (>= 5.2x)."""
    try:
        from transformers.modeling_utils import slice_logits_to_keep
    except ImportError:
        return False
    return "boolean" in (slice_logits_to_keep.__doc__ or "")


def _hidden_size(model) -> int:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return int(getattr(base.config, "hidden_size", 1024) or 1024)


def _attn_implementation(model) -> str | None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base.config, "_attn_implementation", None)


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV-cache argument `cache`; earlier 5.x `past_key_values`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _cache_of(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _repeat_cache(prefix: _Prefix, b: int):
    """A new KV cache: row `prefix.row` of the prefix's cache repeated to batch b (the original
    stays reusable). Layers holding `keys` / `values` tensors (transformers 5) are indexed
    directly; anything else is deep-copied and then selected."""
    cache = prefix.cache
    rows = torch.full((b,), prefix.row, dtype=torch.long)
    layers = getattr(cache, "layers", None)
    if layers is not None and all(hasattr(la, "keys") and hasattr(la, "values") for la in layers):
        c = copy.copy(cache)
        c.layers = [copy.copy(la) for la in layers]
        for la in c.layers:
            if isinstance(la.keys, torch.Tensor) and la.keys.numel():
                la.keys = la.keys.index_select(0, rows.to(la.keys.device))
                la.values = la.values.index_select(0, rows.to(la.values.device))
        return c
    c = copy.deepcopy(cache)
    c.batch_select_indices(rows)
    return c
