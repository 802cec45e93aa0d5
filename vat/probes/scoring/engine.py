"""The `Scorer`: runs the plan (`vat.probes.scoring.plan`) through the model, unit by unit, and
reads the scores from the logits; journaled (`vat.probes.scoring.journal`) and shared across the
ranks of a distributed job (`vat.probes.distributed`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

import vat.probes.distributed as D
import vat.probes.scoring.hf_compat as hf
import vat.probes.scoring.journal as J
import vat.probes.scoring.plan as P
from vat.forward import applies_any_mask, attention_bias, attention_implementation, packed_attention
from vat.models.loading import TORCH_DTYPES as _DTYPES
from vat.probes.scoring.plan import Request, Scores, Unit

log = logging.getLogger(__name__)

# The scorer's arithmetic: bump it when a change moves scores, even by float noise (another batch
# layout, another reduction order). It is part of the cache keys of scored states and journals, so
# a cached pre state is never compared with a post state scored by other arithmetic (a LoRA
# adapter at init must give a gain of exactly 0).
SCORING_VERSION = 2


@dataclass
class Prefix:
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

    def repeat(self, b: int):
        """A new KV cache: this prefix repeated to batch b."""
        return hf.repeat_cache(self.cache, self.row, b)


class Scorer:
    """Scores `Request`s under a causal LM (see `vat.probes.scoring` for the guarantees).

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
            else [P.drop_last(f, c) for f, c in zip(fulls, ctx_lens, strict=True)]
        )
        units = self._units(requests, fulls, runs, ctx_lens)
        rank, world = D.rank_world() if D.sharding() else (0, 1)
        if world > 1:
            owner = D.assign([u.cost for u in units], world)
            mine = [u for u, r in zip(units, owner, strict=True) if r == rank]
        else:
            mine = units
        chunks = P.prefix_chunks(mine, fulls, self.batch_size, applies_any_mask(self.model))
        n_forwards = sum(len(u.batches) for u in mine) + sum(1 for c in chunks if c[0].prefix)
        pad = self._forwards_behind(n, fulls, n_forwards, desc, mine) if world > 1 else 0
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=sum(u.size for u in mine), desc=desc, unit="item",
                   disable=not self.progress or rank != 0, leave=False)  # fmt: skip
        jr = J.active() if world == 1 else None  # ranks > 1: no journal
        reused_before = jr.reused if jr is not None else 0
        try:
            todo: dict[int, list[str] | None] = {}  # id of a unit to score: its request hashes
            for u in mine:
                hashes = None
                if jr is not None:
                    members = u.members()
                    hashes = [J.request_hash(fulls[i], ctx_lens[i], option_ids) for i in members]
                    if (hit := jr.get(hashes)) is not None:
                        out_lp[members] = [lp for lp, _ in hit]
                        if out_opt is not None:
                            out_opt[members] = [o for _, o in hit]
                        bar.update(len(members))
                        continue
                todo[id(u)] = hashes
            # The prefix chunks of the whole plan, journaled units included: a chunk's prefixes
            # run in one padded forward, so the same chunks give bit-identical scores whether or
            # not a re-run skips some of their units.
            for chunk in chunks:
                if not any(id(u) in todo for u in chunk):
                    continue
                prefixes = self._prefix_caches([fulls[u.batches[0][0]][: u.prefix] for u in chunk])
                for u, prefix in zip(chunk, prefixes, strict=True):
                    if id(u) not in todo:
                        continue  # its scores came from the journal
                    for j, idx in enumerate(u.batches):
                        lp, ol = self._run(u, j, prefix, fulls, runs, ctx_lens, opt)
                        out_lp[idx] = lp
                        if out_opt is not None:
                            out_opt[idx] = ol
                        bar.update(len(idx))
                    if jr is not None:
                        members = u.members()
                        jr.add(todo[id(u)], out_lp[members],
                               None if out_opt is None else out_opt[members])  # fmt: skip
            for _ in range(pad):
                self._dummy_forward()
        finally:
            bar.close()
            self.model.train(was_training)
        if world > 1:
            idx = [i for u in mine for i in u.members()]
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
    def _units(self, requests, fulls, runs, ctx_lens) -> list[Unit]:
        """The units of work of `requests` under this scorer's settings (`plan.groups` on the
        whole sequences, then `plan.units` on what is run of them)."""
        groups = P.groups(requests, fulls, reuse_prefix=self.reuse_prefix,
                          min_prefix=self.min_prefix)  # fmt: skip
        return P.units(groups, runs, ctx_lens, batch_size=self.batch_size,
                       hidden=hf.hidden_size(self.model),
                       packs=lambda n: packed_attention(self.model, n) is not None)  # fmt: skip

    def _forwards_behind(self, n, fulls, n_forwards, desc, mine) -> int:
        """How many forwards this rank runs fewer than the busiest one (it pads with dummies).

        Same requests on every rank (else the shares overlap or miss some), and the same number
        of forwards: pad the shorter shares (ZeRO-3 forwards are collective)."""
        info = D.gather((n, sum(map(len, fulls)), n_forwards))
        if len({i[:2] for i in info}) > 1:
            raise RuntimeError(
                "distributed scoring: the ranks were given different requests "
                f"((count, tokens) per rank: {[i[:2] for i in info]}); every rank must score "
                "the same items with the same prompt"
            )
        pad = max(i[2] for i in info) - n_forwards
        rank, world = D.rank_world()
        log.info("%s: rank %d of %d scores %d of %d requests in %d forwards (+%d to keep step)",
                 desc, rank, world, sum(u.size for u in mine), n, n_forwards, pad)  # fmt: skip
        return pad

    def _dummy_forward(self) -> None:
        """A one-token forward that only keeps a rank in step with the others."""
        ids = torch.full((1, 1), self.pad_token_id, dtype=torch.long, device=self.device)
        with self._autocast():
            self.model(input_ids=ids, use_cache=False, **hf.one_logit(self.model))

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=_DTYPES[self.autocast_dtype])

    def _prefix_caches(self, prefixes: list[list[int]]) -> list[Prefix | None]:
        """The KV caches of shared prefixes, run in one forward (left-padded when several)."""
        if not prefixes[0]:
            return [None] * len(prefixes)
        # no logit of a prefix is read: the LM head runs on one position, not all of them
        kw = hf.one_logit(self.model)
        if len(prefixes) == 1:
            ids = torch.tensor(prefixes, device=self.device)
            with self._autocast():
                out = self.model(input_ids=ids, use_cache=True, **kw)
            return [Prefix(hf.cache_of(out))]
        ids, mask, _ = P.padded(prefixes, self.pad_token_id, "left")
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        with self._autocast():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=pos.to(self.device), use_cache=True, **kw)  # fmt: skip
        cache = hf.cache_of(out)
        return [Prefix(cache, r, mask[r].bool()) for r in range(len(prefixes))]

    def _run(self, u: Unit, j: int, prefix, fulls, runs, ctx_lens, opt):
        """Forward batch `j` of unit `u` (after its cached `Prefix`, or None) and read scores."""
        idx = u.batches[j]
        if u.packed and prefix is not None:
            return self._run_packed(fulls, runs, ctx_lens, idx, u.layouts[j], u.prefix, prefix, opt)
        return self._run_padded([fulls[i] for i in idx], [ctx_lens[i] for i in idx], u.prefix,
                                prefix, opt)  # fmt: skip

    def _run_padded(self, seqs, ctx_lens, k, prefix, opt):
        """The suffixes ``seq[k:]``, one row each, padded to the longest."""
        b = len(seqs)
        ids, mask, offsets = P.padded([s[k:] for s in seqs], self.pad_token_id, self.padding_side)
        width = ids.shape[1]
        # Position of a real token = k + its index among the row's real tokens.
        pos = (k + (mask.cumsum(1) - 1).clamp(min=0)).to(self.device)
        kw = {}
        if prefix is not None:
            past = prefix.past_mask(k, b)
            kw[hf.cache_kwarg(self.model)] = prefix.repeat(b)
        else:
            past = torch.ones((b, 0), dtype=torch.long)
        full_mask = torch.cat([past, mask], 1).to(self.device)
        # Only the columns we read need the LM head (vocab-sized rows): from the earliest logit any
        # row needs to the end. With left padding continuations are right-aligned, so this is
        # just the longest continuation; the head and the log-softmax skip the whole context.
        first = min(off + c - 1 - k for c, off in zip(ctx_lens, offsets, strict=True))
        if hf.supports_logits_to_keep(self.model):
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
        return read(logits, seqs, ctx_lens, cont, last, opt)

    def _run_packed(self, fulls, runs, ctx_lens, idx, layout, k, prefix, opt):
        """The batch as packed segments on top of the cached prefix, with a tree attention mask
        (`plan.packed_rows`): each request sees exactly its own sequence, as if run alone, while
        a shared context runs once and no position is spent on padding between sequences. Logits
        are computed only at the positions read (a boolean ``logits_to_keep``): the last context
        token (shared by the requests of that context) and every continuation token but the last.
        The last continuation token is not run at all unless option tokens are read after it (it
        predicts nothing else; lm-evaluation-harness drops it too).

        `idx`: the batch's request indices into `fulls` (whole sequences, what is read), `runs`
        (what is run) and `ctx_lens`; `layout`: its planned `plan.layout` over `runs`.
        """
        past = prefix.past_mask(k, 1)[0].bool()  # the cached positions (left padding: some not)
        ids, pos, allow, keep, at = P.packed_rows(layout, runs, ctx_lens, k, past,
                                                  self.pad_token_id)  # fmt: skip
        at = [at[i] for i in idx]
        n_cont = [len(fulls[i]) - ctx_lens[i] for i in idx]
        n_rows, width = keep.shape
        dtype = next(self.model.parameters()).dtype
        mask4 = attention_bias(allow[:, None], attention_implementation(self.model), dtype)
        kw = {hf.cache_kwarg(self.model): prefix.repeat(n_rows)}
        if hf.supports_logits_to_keep(self.model) and hf.bool_logits_to_keep():
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
        return read(logits, [fulls[i] for i in idx], [ctx_lens[i] for i in idx], cont, last, opt)


def read(logits, seqs, ctx_lens, cont, last, opt):
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
