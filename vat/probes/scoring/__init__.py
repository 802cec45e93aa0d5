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
- Tokenisation follows lm-evaluation-harness (`HFLM._encode_pair`, ours `vat.forward.encode_pair`):
  trailing spaces of the context move to the continuation, the continuation is
  ``encode(context + continuation)`` minus the context's tokens, and the model sees
  ``context_ids + continuation_ids``.

The package: `plan` (requests, scores, and which of them run together in which rows), `engine`
(the `Scorer`, which runs the plan and reads the scores), `journal` (resumable scores) and
`hf_compat` (what differs between transformers versions).
"""

from vat.probes.scoring.engine import SCORING_VERSION, Scorer
from vat.probes.scoring.journal import ScoreJournal, journal
from vat.probes.scoring.plan import Request, Scores

__all__ = ["SCORING_VERSION", "Request", "ScoreJournal", "Scorer", "Scores", "journal"]
