"""Probe throughput: our likelihood scoring against lm-evaluation-harness, our judgment probe
against a naive per-item loop.

**Likelihood.** Held-out items as (context, continuation) strings, in two layouts:

- *scene context* (the issue's benchmark): context ``"Scenario: {scenario}\\nWhat I do:"``,
  continuation ``" {action}"``; the 20 actions of a scene share the whole context (~70% of the
  tokens lm-eval runs are shared context);
- *probe prompt*: `LikelihoodProbe`'s own requests, whose context also names the micro-value: the
  scenario prefix is shared by a scene's 20 items, the whole context only by the two actions of
  a pair.

The peer is lm-eval's ``HFLM.loglikelihood`` at batch 8 (its fastest here) on the very same
strings; ours tokenises them with `encode_pair` (token ids checked equal to lm-eval's
`_encode_pair`) and scores them with `vat.probes.scoring.Scorer` at the probe's default batch size
(16) and at batch 8. Both get the same model object, fp32. Agreement: the largest relative
difference of the summed log-probs, ``|ours - lm-eval| / |lm-eval|`` (target 1e-6). Target: ours
>= 3x lm-eval's items/s.

**Judgment.** The judgment probe's forward-order prompts (chat template; scenario and question
first, the action last, so a scene's items share everything up to the action). The peer is what a
user writes: one plain HF forward per prompt (batch 1, no cache, all positions), the option
log-probs read at the last position. Ours is the probe's `Scorer`. Agreement: the largest absolute
difference of the option log-probs (target 1e-4). Target: ours >= 5x the naive loop.

Every contender runs in this process on the same model, alternating
(`common.alternate`), after one untimed run that counts the FLOPs; work = items (one request each). The FLOPs each contender runs (2 N per
position forwarded, padding included, + 2 d V per LM-head row; `common.TokenCounter`) give the
*FLOP ratio*: the speed-up that equal FLOP/s would give, the arithmetic ceiling of ours/peer.
Without lm-eval installed (the CI venv) the likelihood tables have our rows only.

    python benchmarks/bench_probe.py                      # tiny, tiny_4m, SmolLM2-135M
    python benchmarks/bench_probe.py --smoke --no-write   # tiny, 1 scene, 1 rep (CI)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from vat.data import BUNDLED, ItemSet, load_items
from vat.forward import encode_pair, single_token_ids
from vat.probes import JudgmentProbe, LikelihoodProbe, Request, Scorer
from vat.taxonomy import load_taxonomy

MODELS = ["tiny", "tiny_4m", "smollm2_135m_instruct"]
SMOLLM = "smollm2_135m_instruct"
# Held-out scenes (20 items each) per request set: all 14 on the tiny models; on SmolLM2 the
# issue's 100 requests (5 scenes) for the scene-context layout, fewer where the peer is slow.
SCENES = {SMOLLM: {"scene context": 5, "probe prompt": 3, "judgment": 2}}
MAX_REPS = {SMOLLM: 3}  # keeps the SmolLM2 part to minutes on 2 CPU cores
LM_EVAL_BATCH = 8
TARGETS = {"likelihood": 3.0, "judgment": 5.0}


def held_items(n_scenes: int | None) -> ItemSet:
    """The bundled held-out items (``data=bundled``, ``.heldout()``), the first `n_scenes` scenes."""
    held = load_items(BUNDLED, load_taxonomy("schwartz")).heldout()
    scenes = set(held.scenes()[:n_scenes] if n_scenes else held.scenes())
    return held.subset(it for it in held if it.scene_id in scenes)


def load_model(name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = common.model_dir(name)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    return model, tok


def lm_eval_or_none():
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        return None
    return HFLM, Instance


def texts_of(layout: str, tok, items: ItemSet) -> list[tuple[str, str]]:
    if layout == "scene context":
        return [(f"Scenario: {it.scenario}\nWhat I do:", f" {it.action}") for it in items]
    return LikelihoodProbe(progress=False).texts(tok, items)


# ------------------------------------------------------------------------------- likelihood
def likelihood_contenders(model, tok, items, layout, lm) -> dict:
    texts = texts_of(layout, tok, items)
    groups = [it.scene_id for it in items]
    pad = tok.pad_token_id or 0

    def ours(batch_size: int):
        def run():
            reqs = [Request(*map(tuple, encode_pair(tok, c, x)), group=g)
                    for (c, x), g in zip(texts, groups, strict=True)]  # fmt: skip
            s = Scorer(model, batch_size=batch_size, pad_token_id=pad, progress=False)
            return s.score(reqs).logprob

        return run

    out = {}
    if lm is not None:
        _, Instance = lm_eval_or_none()
        instances = [Instance(request_type="loglikelihood", doc={}, arguments=t, idx=i)
                     for i, t in enumerate(texts)]  # fmt: skip

        def lm_eval_run():
            return np.array([lp for lp, _ in lm.loglikelihood(instances, disable_tqdm=True)])

        out[f"lm-eval HFLM.loglikelihood, batch {LM_EVAL_BATCH}"] = lm_eval_run
    default = LikelihoodProbe.batch_size
    out[f"ours, batch {default} (probe default)"] = ours(default)
    out[f"ours, batch {LM_EVAL_BATCH}"] = ours(LM_EVAL_BATCH)
    return out


def check_tokens(lm, tok, items, layout) -> None:
    """Both sides see the same token ids: lm-eval's `_encode_pair` equals our `encode_pair`."""
    for c, x in texts_of(layout, tok, items):
        ours = tuple(map(list, encode_pair(tok, c, x)))
        assert lm._encode_pair(c, x) == ours, f"token ids differ for {c!r} + {x!r}"


def bench_likelihood(name, model, tok, items, layout, reps, lm) -> tuple[str, dict]:
    if lm is not None:
        check_tokens(lm, tok, items, layout)
    contenders = likelihood_contenders(model, tok, items, layout, lm)
    flops = warm_and_count(model, contenders)
    res = common.alternate(contenders, len(items), reps=reps, warmup=0)
    return _table("likelihood", f"{name}, {layout}", res, lm is not None, flops, len(items), reps)


def warm_and_count(model, contenders: dict) -> dict[str, float]:
    """One untimed run of each contender (the warm-up), counting the FLOPs it runs."""
    shape = common.model_shape(model)
    return {name: common.count(model, fn).flops(shape) for name, fn in contenders.items()}


def _rel_diff(a, ref) -> float:
    return float(np.max(np.abs(a - ref) / np.abs(ref)))


def _abs_diff(a, ref) -> float:
    return float(np.max(np.abs(a - ref)))


def _table(kind, title, res, has_peer, flops, n_items, reps) -> tuple[str, dict]:
    diff = _rel_diff if kind == "likelihood" else _abs_diff
    timings = list(res.values())
    ref = timings[0] if has_peer else None
    rows, best, agree, flop_ratio = [], float("nan"), float("nan"), float("nan")
    for t in timings:
        row = common.rate_row(t, "items/s", ref if t is not ref else None)
        if ref is None:
            row[3] = "n/a (peer missing)"
        ours = ref is not None and t is not ref
        row.append(f"{flops[t.name] / n_items / 1e9:.2f}")
        row.append(f"{flops[ref.name] / flops[t.name]:.2f}x" if ours else "-")
        row.append(f"{diff(t.result, ref.result):.1e}" if ours else "-")
        rows.append(row)
        if ours:
            if np.isnan(best) or t.median / ref.median > best:
                best, flop_ratio = t.median / ref.median, flops[ref.name] / flops[t.name]
            agree = np.nanmax([agree, diff(t.result, ref.result)])
    header = ["contender", "items/s (median)", "min-max", "ours/peer", "peak RSS MiB",
              "GFLOP/item", "FLOP ratio", "max rel diff" if kind == "likelihood"
              else "max abs diff"]  # fmt: skip
    text = f"**{title}**: {n_items} items, {reps} reps\n\n{common.table(header, rows)}"
    return text, {"ratio": best, "diff": agree, "flop_ratio": flop_ratio}


# ------------------------------------------------------------------------------- judgment
def judgment_contenders(model, tok, items) -> tuple[dict, JudgmentProbe]:
    probe = JudgmentProbe(progress=False)
    if tok.chat_template is None:
        probe = JudgmentProbe(progress=False, use_chat_template=False)
    reqs = probe.requests(tok, items, "forward")
    options = single_token_ids(tok, probe._option_labels())
    pad = tok.pad_token_id or 0

    @torch.no_grad()
    def naive():
        """What a user writes: one prompt at a time, the whole sequence, the last position."""
        out = []
        for r in reqs:
            logits = model(torch.tensor([r.context])).logits[0, -1]
            out.append(logits.float().log_softmax(-1)[options].double().numpy())
        return np.stack(out)

    def ours():
        s = Scorer(model, batch_size=probe.batch_size, pad_token_id=pad, progress=False)
        return s.score(reqs, options).option_logprobs

    contenders = {"naive loop: HF forward per item, batch 1": naive,
                  f"ours, batch {probe.batch_size} (probe default)": ours}  # fmt: skip
    return contenders, probe


def bench_judgment(name, model, tok, items, reps) -> tuple[str, dict]:
    contenders, probe = judgment_contenders(model, tok, items)
    flops = warm_and_count(model, contenders)
    res = common.alternate(contenders, len(items), reps=reps, warmup=0)
    chat = "chat template" if probe.use_chat_template else "plain text"
    return _table("judgment", f"{name}, {chat}", res, True, flops, len(items), reps)


# ------------------------------------------------------------------------------- main
def profiles(model, tok, lm) -> str:
    """Where the time goes on one scene (20 items) of the scene-context layout."""
    items = held_items(1)
    contenders = likelihood_contenders(model, tok, items, "scene context", lm)
    out = ["### Profile: SmolLM2, one scene (20 items, scene context), top ops by self CPU time"]
    for name, fn in contenders.items():
        if "batch 8" in name and name.startswith("ours"):
            continue
        tab, shares = common.profile_ops(fn)
        out += [f"{name}: {common.shares_line(shares)}", tab]
    return "\n\n".join(out)


def main() -> None:
    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--no-profile", action="store_true", help="skip the SmolLM2 op profile")
    args = p.parse_args()
    models = args.models.split(",") if args.models else (["tiny"] if args.smoke else MODELS)
    peer = lm_eval_or_none()
    if peer is None:
        print("lm-eval is not installed: the likelihood peer is missing, our rows only")
    t_start = time.perf_counter()
    sections: dict[str, list[str]] = {"likelihood": [], "judgment": []}
    verdict, extra = [], []
    for name in models:
        model, tok = load_model(name)
        lm = None
        if peer is not None:
            lm = peer[0](pretrained=model, tokenizer=tok, batch_size=LM_EVAL_BATCH, device="cpu")
        reps = 1 if args.smoke else min(args.reps, MAX_REPS.get(name, args.reps))
        scenes = SCENES.get(name, {})
        runs = [("likelihood", layout) for layout in ("scene context", "probe prompt")]
        runs.append(("judgment", "judgment"))
        for kind, layout in runs:
            items = held_items(1 if args.smoke else scenes.get(layout))
            if kind == "likelihood":
                text, st = bench_likelihood(name, model, tok, items, layout, reps, lm)
            else:
                text, st = bench_judgment(name, model, tok, items, reps)
            print(text + "\n", flush=True)
            sections[kind].append(text)
            if not np.isnan(st["ratio"]):
                ok = "met" if st["ratio"] >= TARGETS[kind] else "MISSED"
                verdict.append(f"- {name}, {layout}: best ours/peer {st['ratio']:.2f}x (target "
                               f"{TARGETS[kind]:.0f}x: {ok}) at a FLOP ratio of "
                               f"{st['flop_ratio']:.2f}x ({100 * st['ratio'] / st['flop_ratio']:.0f}%"
                               f" of it); agreement {st['diff']:.1e}")  # fmt: skip
        if name == SMOLLM and not (args.no_profile or args.smoke):
            extra.append(profiles(model, tok, lm))
    elapsed = time.perf_counter() - t_start
    print("\n".join(verdict))
    print(f"benchmark time {elapsed:.0f} s")
    if args.no_write:
        return
    cmd = "python benchmarks/bench_probe.py" + (f" --models {args.models}" if args.models else "")
    md = [
        "## Probe throughput (`bench_probe.py`)",
        f"{common.machine()}; {common.stamp()}; `{cmd}` ({elapsed / 60:.0f} min; torch threads "
        f"{torch.get_num_threads()}).",
        "### Likelihood scoring vs lm-eval `loglikelihood` (identical strings and tokens, fp32)",
        *sections["likelihood"],
        "### Judgment probe vs a naive per-item loop (fp32)",
        *sections["judgment"],
        "### Targets",
        "\n".join(verdict),
        *extra,
        INTERPRETATION,
    ]
    common.write_section("probe", "\n\n".join(md))


INTERPRETATION = """### Interpretation

- **SmolLM2 (the issue's measurement model) is compute-bound on both sides**: matmul is 82-84% of
  the CPU time of ours and of lm-eval in the profiles above, so ours/peer tracks the FLOP ratio
  (the speed-up equal FLOP/s would give). Ours runs a scene's shared prefix once (a forward of
  several scenes' prefixes together), each distinct context once with its requests'
  continuations packed after it (a tree attention mask), the LM head and the float32 log-softmax
  only on the rows read, and not the last continuation token (nothing reads its prediction).
  lm-eval recomputes the whole context for every request and applies the LM head at every
  position. What is left is work both must do: every continuation token's body and LM head (the
  head is 2 d V = 57 MFLOP per row against 2 N = 212 MFLOP for the body on SmolLM2).
- The *scene context* layout (the issue's benchmark: a whole context shared by 20 items) has a
  FLOP ceiling of about 3.1x by our count (GFLOP/item columns); ours reaches it (3.13x on a quiet
  machine, 2.86x in an earlier run under load), so 3x sits at the edge of what the arithmetic
  allows on this data. The *probe prompt* layout (the likelihood probe's own prompts: the
  scenario shared by a scene's 20 items, the micro-value line only by a pair) reaches 2.8x of its
  3.1x ceiling (91%); most likely the attention over its longer packed rows (dense under the
  tree mask), which the FLOP count leaves out. The judgment probe clears its 5x.
- The tiny models (1M, 4M parameters) are bound by per-forward overhead (Python, dispatch, a
  few-hundred-microsecond forward), not FLOPs: there the ratio follows the number of forwards
  and varies with the machine's load (the min-max columns).
- Absolute items/s depend on what else runs on the 2 cores; the alternation keeps the ratios fair.
"""


if __name__ == "__main__":
    main()
