"""The scorer's plan: which requests run together, after which cached prefix, in which rows.

Everything here is pure (no model runs): requests and their scores, the prefix groups, the units of
work a rank takes whole and their batches, the packing of a batch into rows (`layout`, `fill`), and
the input tensors of a padded or a packed batch (ids, position ids, the tree attention mask).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


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


Row = list[tuple[tuple[int, ...], list[int]]]  # segments: (context, member requests)
Layout = tuple[list[Row], int]  # a packed batch: (rows, width)


class Unit:
    """Batches (request indices) run after one shared cached prefix of `prefix` tokens.

    With `packed`, each batch runs as packed segments (`packed_rows`): every distinct context
    once, then its requests' continuations, no padding between them.
    """

    def __init__(self, prefix: int, batches: list[list[int]], fulls: list[list[int]],
                 layouts: list[Layout] | None = None):  # fmt: skip
        self.prefix = prefix
        self.batches = batches
        self.layouts = layouts  # per batch, packed: (rows, width) from `layout`, planned once
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

    def members(self) -> list[int]:
        """The unit's request indices, batch by batch."""
        return [i for b in self.batches for i in b]


def common_prefix_len(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(map(len, seqs))
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


def drop_last(seq: list[int], ctx_len: int) -> list[int]:
    """`seq` without its last continuation token (as it is when the continuation is empty)."""
    return seq[:-1] if len(seq) > ctx_len else seq


# ------------------------------------------------------------------------------ groups, units
def groups(requests, fulls, *, reuse_prefix: bool, min_prefix: int) -> list[tuple[int, list[int]]]:
    """[(cached prefix length, request indices)], each list sorted longest first.

    Within a group the cached prefix is the longest common token prefix of the group's
    contexts, minus one token: the suffix run then starts at the last context token, so every
    logit a request needs (from its last context token on) comes out of the suffix run.
    """
    plan: list[tuple[int, list[int]]] = []
    loose: list[int] = []
    by_group: dict[Hashable, list[int]] = defaultdict(list)
    for i, r in enumerate(requests):
        if reuse_prefix and r.group is not None:
            by_group[r.group].append(i)
        else:
            loose.append(i)
    for members in by_group.values():
        k = common_prefix_len([requests[i].context for i in members]) - 1
        if len(members) < 2 or k < min_prefix:
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


def units(plan, fulls, ctx_lens, *, batch_size: int, hidden: int,
          packs: Callable[[int], bool]) -> list[Unit]:  # fmt: skip
    """The plan as units of work a rank takes whole: a group with its cached prefix and all
    its batches (the prefix is run once), or one batch of loose requests. Batches are cut
    balanced (see `balanced`), or, when the model runs the group's sequences packed
    (``packs(longest)``), by `packed_batches`."""
    out = []
    for k, members in plan:
        if k and packs(max(len(fulls[i]) for i in members)):
            batches, layouts = packed_batches(members, fulls, ctx_lens, k, batch_size, hidden)
            out.append(Unit(k, batches, fulls, layouts))
        elif k:
            out.append(Unit(k, balanced(members, batch_size), fulls))
        else:
            out.extend(Unit(0, [b], fulls) for b in balanced(members, batch_size))
    return out


def packed_batches(members, fulls, ctx_lens, k: int, batch_size: int, hidden: int):
    """A group's requests (ordered by context) cut into packed batches, as few as the memory
    of `batch_size` unpacked sequences allows: a batch's packed rows hold no more token
    positions, and their KV cache (prefix included) no more positions, than `batch_size`
    sequences as long as the group's longest would. A context's requests stay together unless
    they alone exceed that; then they are cut into batches of `batch_size`. Returns the
    batches and their layouts (each computed once: the run uses it as planned)."""
    budget = batch_size * max(len(fulls[i]) for i in members)
    families: list[list[int]] = []
    for i in members:
        ctx = fulls[i][: ctx_lens[i]]
        if families and ctx == fulls[families[-1][0]][: ctx_lens[families[-1][0]]]:
            families[-1].append(i)
        else:
            families.append([i])

    layouts: dict[tuple[int, ...], Layout] = {}

    def fits(batch: list[int]) -> bool:
        key = tuple(batch)
        if key not in layouts:
            layouts[key] = layout(batch, fulls, ctx_lens, k, hidden)
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
            batches.extend(balanced(families[j], batch_size))
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
        fits(b)  # a context cut by `balanced` has no layout yet
    return batches, [layouts[tuple(b)] for b in batches]


def prefix_chunks(units: list[Unit], fulls, batch_size: int, batched: bool) -> list[list[Unit]]:
    """Consecutive units whose shared prefixes run in one forward (a prefix alone is a
    forward of a few dozen tokens, which a CPU runs at a fraction of its matmul speed): at
    most `batch_size` of them, padded to the longest, within the positions of `batch_size`
    sequences as long as the longest of their requests. A unit without a prefix is a chunk of
    its own (no prefix forward); without `batched` (models whose attention takes no mask with
    padding inside a row, e.g. flash attention) each prefix runs alone."""
    chunks: list[list[Unit]] = []
    budget = 0
    for u in units:
        longest = max(len(fulls[i]) for b in u.batches for i in b)
        if chunks and u.prefix and chunks[-1][0].prefix and batched:
            cand = chunks[-1] + [u]
            cap = batch_size * max(budget, longest)
            if len(cand) <= batch_size and len(cand) * max(c.prefix for c in cand) <= cap:
                chunks[-1] = cand
                budget = max(budget, longest)
                continue
        chunks.append([u])
        budget = longest
    return chunks


def balanced(members: list[int], size: int) -> list[list[int]]:
    """`members` cut, in order, into the fewest batches of at most `size`, as equal as possible
    (20 at size 16 gives 10 + 10, not 16 + 4: no tiny, inefficient last batch)."""
    n_batches = -(-len(members) // size)
    return [part.tolist() for part in np.array_split(members, n_batches)]  # longer parts first


# ------------------------------------------------------------------------------ packed rows
def layout(batch, fulls, ctx_lens, k: int, hidden: int = 1024) -> Layout:
    """How a batch packs after a cached prefix of k tokens: (rows, width).

    A row is a list of segments (context, members): the context's tokens after the prefix, then
    the continuation of each member (requests with that context), in order. Tried for each row
    width between the longest single request (context after the prefix + continuation) and three
    times that, two first-fit-decreasing packings (`fill`): whole segments (a context with all
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
    best: tuple[float, list[Row], int] | None = None
    for width in range(longest, 3 * longest + 1, max(1, longest // 24)):
        for whole in (True, False):
            rows = fill(fams, conts, k, width, whole)
            cost = len(rows) * width * (1 + (k + width) / (6 * hidden))
            if best is None or cost < best[0]:
                best = (cost, rows, width)
    return best[1], best[2]


def fill(fams, conts, k: int, width: int, whole: bool) -> list[Row]:
    """First-fit decreasing of `fams` [(context, members longest first)] into rows of `width`."""
    rows: list[Row] = []
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


# ------------------------------------------------------------------------------ input tensors
def padded(seqs: list[list[int]], pad_token_id: int, side: str):
    """(ids, mask, column of each row's first real token) of `seqs` padded to one width, on the
    `side` ("left" or "right"). Not `torch.nn.utils.rnn.pad_sequence`: it pads on the left only
    from torch 2.5, and this also returns the mask and the offsets."""
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    offsets = []
    for r, s in enumerate(seqs):
        off = width - len(s) if side == "left" else 0
        ids[r, off : off + len(s)] = torch.tensor(s, dtype=torch.long)
        mask[r, off : off + len(s)] = 1
        offsets.append(off)
    return ids, mask, offsets


def packed_rows(layout: Layout, runs, ctx_lens, k: int, past: torch.Tensor, pad_token_id: int):
    """The inputs of a batch packed as `layout` on top of a cached prefix of k tokens.

    A segment is one distinct context's tokens after the prefix, run once, followed by the
    continuations of requests with that context. Every token attends to the prefix (`past`: its
    cached positions, some not real under left padding), to its context's tokens up to itself
    and, in a continuation, causally to that continuation; its position id is its position in its
    own sequence. So each request sees exactly its own sequence, as if run alone.

    `runs`, `ctx_lens`: every request as run and its context length, by the request indices the
    layout names. Returns ``(ids, pos, allow, keep, at)``: token and position ids (rows, width),
    the attention allowed (rows, width, cached + width), the positions whose logits are read (the
    last token of each context, shared by its requests, and every continuation token) and, by
    request index, the (row, column) of the logits that predict its continuation tokens, in
    order, then of the logit after its last token run.
    """
    rows_of, width = layout
    n_rows = len(rows_of)
    ids = torch.full((n_rows, width), pad_token_id, dtype=torch.long)
    pos = torch.zeros((n_rows, width), dtype=torch.long)
    kv = len(past)
    allow = torch.zeros((n_rows, width, kv + width), dtype=torch.bool)
    allow[:, :, :kv] = past  # the prefix; padding attends to it too (no empty softmax rows)
    keep = torch.zeros((n_rows, width), dtype=torch.bool)
    tril = torch.ones((width, width), dtype=torch.bool).tril()
    at: dict[int, list[tuple[int, int]]] = {}
    for row, members in enumerate(rows_of):
        col = 0
        for ctx, reqs in members:
            m0, m = col, len(ctx) - k
            ids[row, m0 : m0 + m] = torch.tensor(ctx[k:], dtype=torch.long)
            pos[row, m0 : m0 + m] = torch.arange(k, k + m)
            allow[row, m0 : m0 + m, kv + m0 : kv + m0 + m] = tril[:m, :m]
            keep[row, m0 + m - 1] = True  # predicts every member's first continuation token
            col += m
            for i in reqs:
                c, t = ctx_lens[i], len(runs[i]) - ctx_lens[i]
                ids[row, col : col + t] = torch.tensor(runs[i][c:], dtype=torch.long)
                pos[row, col : col + t] = torch.arange(c, c + t)
                allow[row, col : col + t, kv + m0 : kv + m0 + m] = True
                allow[row, col : col + t, kv + col : kv + col + t] = tril[:t, :t]
                keep[row, col : col + t] = True
                at[i] = [(row, m0 + m - 1)] + [(row, col + j) for j in range(t)]
                col += t
    return ids, pos, allow, keep, at
