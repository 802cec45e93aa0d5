"""Model FLOPs utilisation (MFU) of scoring and training, against this machine's measured peak.

**Peak.** The best FLOP/s of square ``torch.matmul``s (n = 1024, 2048, 4096; fp32 and bf16; best of
several, 2 n^3 FLOPs each), measured in this run: what the BLAS reaches on this CPU with torch's
threads, not a datasheet number.

**Achieved.** FLOPs counted from the model shape and the tokens actually run:

- N = non-embedding parameters (the transformer body); the LM head (d x V, tied to the embedding on
  SmolLM2) is counted separately, 2 d V FLOPs per position it is applied to. Attention scores
  (QK^T, AV) are not counted (about 4% at these ~110-token sequences), nor is padding: "useful"
  FLOP/s counts real tokens only; the table also gives the padded count (what the hardware ran).
- Scoring (our likelihood probe's `Scorer` on held-out items, fp32; and bf16 autocast): 2 N per real
  token forwarded + 2 d V per logit row computed. The token counts come from a forward hook, so a
  prefix run once counts once.
- Training (a plain step: forward, cross-entropy, backward, AdamW, on right-padded batches of the
  DPO training data, chosen and rejected rows, 4 pairs = 8 rows per step as in the default
  ``batch.micro_size``): full fine-tuning does 6 (N + d V) per real token (forward 2, backward 4).
  LoRA (the default training; r=16, all linear layers) skips the frozen weights' gradients, so its
  useful work is about 4 (N + d V) per token (forward 2 + activation gradients 2); it is reported
  against that.

MFU = achieved / peak (fp32 peak for fp32 runs, bf16 peak for autocast). A torch.profiler breakdown
of one scoring run and one training step says what bounds it.

    python benchmarks/bench_mfu.py                # SmolLM2-135M
    python benchmarks/bench_mfu.py --smoke --no-write
    python benchmarks/bench_mfu.py --device cuda --out mfu_gpu.md   # one GPU

On ``--device cuda``: the peak is the best of square matmuls at n = 4096 and 8192 on the GPU (fp32
with TF32 off, as torch's default "highest" precision runs fp32 models; TF32; bf16), timed with
``torch.cuda.synchronize``; scoring covers every held-out item (fp32 and bf16 autocast); training
runs under bf16 autocast (fp32 weights, as Lightning's bf16-mixed), 4 pairs (8 rows) a step as in
the default and 16 pairs (32 rows) for LoRA; the memory column is the peak GPU memory allocated.
The section goes to RESULTS.md as "mfu_gpu" (or to ``--out``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

from vat.data import BUNDLED, load_items
from vat.probes import LikelihoodProbe, Scorer
from vat.taxonomy import load_taxonomy


# ------------------------------------------------------------------------------- peak
def mfu(rate: float, peak: float) -> str:
    """rate / peak as a percentage; "n/a" when the run beat the measured peak (a CPU without
    bf16 hardware: torch's plain bf16 matmul takes a slower path than autocast's oneDNN linear,
    so that "peak" is no bound)."""
    return f"{100 * rate / peak:.0f}%" if rate <= peak else "n/a (above the measured peak)"


def matmul_peak(sizes: list[int], dtype: torch.dtype, budget_s: float = 30.0) -> tuple[float, int]:
    """Best FLOP/s of an n x n @ n x n matmul (2 n^3 FLOPs) over `sizes`, ascending: best of up
    to 5 runs per size after a warm-up, within `budget_s` in all (a size whose predicted time
    does not fit is skipped: bf16 without hardware support can be 100x slower than fp32)."""
    best, best_n, t_start, last = 0.0, 0, time.perf_counter(), None
    for n in sorted(sizes):
        if last is not None and last[1] * (n / last[0]) ** 3 * 3 > budget_s - (time.perf_counter() - t_start):  # fmt: skip
            break
        a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
        t0 = time.perf_counter()
        a @ b  # warm-up (thread pool, packing buffers)
        last = (n, time.perf_counter() - t0)
        for _ in range(5):
            t0 = time.perf_counter()
            a @ b
            dt = time.perf_counter() - t0
            last = (n, min(last[1], dt))
            if 2 * n**3 / dt > best:
                best, best_n = 2 * n**3 / dt, n
            if time.perf_counter() - t_start > budget_s:
                return best, best_n
    return best, best_n


def matmul_peak_cuda(sizes: list[int], dtype: torch.dtype, tf32: bool = False,
                     iters: int = 10, rounds: int = 3) -> tuple[float, int]:  # fmt: skip
    """Best FLOP/s of an n x n @ n x n matmul on the GPU over `sizes`: `rounds` of `iters`
    back-to-back matmuls after a warm-up, each round timed between two synchronizes. fp32 runs
    with TF32 off unless `tf32` (torch's float32 matmul precision "high" vs "highest")."""
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    best, best_n = 0.0, 0
    try:
        for n in sorted(sizes):
            a = torch.randn(n, n, device="cuda").to(dtype)
            b = torch.randn(n, n, device="cuda").to(dtype)
            for _ in range(3):
                a @ b
            torch.cuda.synchronize()
            for _ in range(rounds):
                t0 = time.perf_counter()
                for _ in range(iters):
                    a @ b
                torch.cuda.synchronize()
                rate = 2 * n**3 * iters / (time.perf_counter() - t0)
                if rate > best:
                    best, best_n = rate, n
            del a, b
            torch.cuda.empty_cache()
    finally:
        torch.set_float32_matmul_precision(prev)
    return best, best_n


# ------------------------------------------------------------------------------- scoring
def bench_scoring(model, tok, items, reps, peaks,
                  device: str = "cpu") -> tuple[list[list], list[str]]:  # fmt: skip
    """Our likelihood probe's `Scorer` on `items`, fp32 and bf16 autocast, alternating."""
    sh = common.model_shape(model)
    reqs = LikelihoodProbe(progress=False).requests(tok, items)
    pad = tok.pad_token_id or 0
    cuda = device != "cpu"
    gpu_mib: dict[str, float] = {}

    def run(autocast: str | None):
        def fn():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            out = Scorer(model, pad_token_id=pad, progress=False,
                         autocast_dtype=autocast).score(reqs)  # fmt: skip
            common.sync(device)
            if cuda:
                key = autocast or "fp32"
                gpu_mib[key] = max(gpu_mib.get(key, 0.0), torch.cuda.max_memory_allocated() / 2**20)
            return out

        return fn

    c = common.count(model, run(None))  # what one run forwards (deterministic)
    flops = c.flops(sh)
    useful = 2.0 * sh["N"] * c.real + 2.0 * sh["d"] * sh["V"] * c.head_rows
    res = common.alternate({"fp32": run(None), "bf16 autocast": run("bfloat16")}, flops, reps=reps)
    diff = float(np.max(np.abs(res["bf16 autocast"].result.logprob - res["fp32"].result.logprob)))
    rows = []
    for name, t in res.items():
        peak = peaks["fp32" if name == "fp32" else "bf16"]
        rate = t.median  # FLOP/s, padding included
        mem = gpu_mib.get("fp32" if name == "fp32" else "bfloat16", 0.0) if cuda else t.peak_rss
        rows.append([f"scoring (likelihood probe), {name}", f"{len(items) * rate / flops:.2f} items/s",
                     f"{rate * useful / flops / 1e9:.1f}", mfu(rate * useful / flops, peak),
                     mfu(rate, peak), f"{mem:.0f}"])  # fmt: skip
    notes = [f"scoring: {len(items)} items in {c.forwards} forwards: {c.real} real tokens "
             f"({c.positions} positions with padding), {c.head_rows} LM-head rows; "
             f"{flops / 1e9:.0f} GFLOP per run; bf16 autocast vs fp32: log-prob max abs diff "
             f"{diff:.2g}"]  # fmt: skip
    return rows, notes


# ------------------------------------------------------------------------------- training
def train_batches(tok, n_batches: int, pairs_per_batch: int = 4) -> list[dict]:
    from vat.data.collate import PreferenceCollator
    from vat.data.datasets import PreferenceDataset
    from vat.data.prompt import TrainPrompt

    prompt = TrainPrompt(**common.train_config().prompt)
    ds = PreferenceDataset(
        load_items(BUNDLED, load_taxonomy("schwartz")), "benevolence", tok, prompt
    )
    coll = PreferenceCollator(tok.pad_token_id if tok.pad_token_id is not None else 0)
    ex = list(ds)
    out = []
    for j in range(n_batches):
        chunk = [ex[(j * pairs_per_batch + i) % len(ex)] for i in range(pairs_per_batch)]
        b = coll(chunk)
        out.append({k: b[k] for k in ("input_ids", "attention_mask", "labels")})
    return out


def bench_training(name, make_model, tok, n_steps, peaks, lora: bool, device: str = "cpu",
                   bf16: bool = False, pairs: int = 4) -> tuple[list, str]:  # fmt: skip
    """Time `n_steps` plain training steps (after one untimed warm-up step); `bf16`: the forward
    under bf16 autocast (fp32 weights and optimizer, as Lightning's bf16-mixed)."""
    import contextlib

    cuda = device != "cpu"
    model = make_model()
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))  # fmt: skip
    model.train()
    sh = common.model_shape(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batches = train_batches(tok, n_steps + 1, pairs)
    if cuda:
        batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
    n_tok = [int(b["attention_mask"].sum()) for b in batches]

    def step(b):
        ctx = (
            torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
            if bf16
            else contextlib.nullcontext()
        )
        with ctx:
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step(batches[0])
    common.sync(device)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    secs, tokens = [], 0
    with common.PeakRSS() as mem:
        for b, n in zip(batches[1:], n_tok[1:], strict=True):
            t0 = time.perf_counter()
            step(b)
            common.sync(device)
            secs.append(time.perf_counter() - t0)
            tokens += n
    mem_mib = torch.cuda.max_memory_allocated() / 2**20 if cuda else mem.peak
    peak = peaks["bf16" if bf16 else "fp32"]
    per_tok = (4 if lora else 6) * (sh["N"] + sh["d"] * sh["V"])
    rate = per_tok * tokens / sum(secs)
    rates = [per_tok * n / s for n, s in zip(n_tok[1:], secs, strict=True)]
    padded = sum(b["input_ids"].numel() for b in batches[1:])
    label = (f"training, {'LoRA r=16 (4N)' if lora else 'full FT (6N)'}, "
             f"{'bf16 autocast' if bf16 else 'fp32'}{f', {pairs} pairs' if pairs != 4 else ''}")  # fmt: skip
    row = [label, f"{tokens / sum(secs):.0f} tok/s", f"{rate / 1e9:.1f}",
           mfu(rate, peak), mfu(rate * padded / tokens, peak),
           f"{mem_mib:.0f}"]  # fmt: skip
    spread = f"{min(rates) / 1e9:.1f}-{max(rates) / 1e9:.1f} GFLOP/s over steps"
    note = (f"{label}: {n_steps} steps of {2 * pairs} rows, {tokens} real tokens ({padded} padded), {spread}; "
            f"trainable {sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6:.1f}M")  # fmt: skip
    model._bench_step = lambda: step(batches[1])
    return row, note, model


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = common.parser(__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=None,
                   help="timed training steps per setting (default 3 on cpu, 20 on cuda)")  # fmt: skip
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda: one GPU (peak at n=4096/8192, training under bf16 autocast)")  # fmt: skip
    p.add_argument("--out", default=None,
                   help="write the markdown section to this file instead of RESULTS.md")  # fmt: skip
    args = p.parse_args()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    device = args.device
    name = (args.models or ("tiny" if args.smoke else "smollm2_135m_instruct")).split(",")[0]
    reps = 1 if args.smoke else min(args.reps, 5) if cuda else args.reps
    t_start = time.perf_counter()

    peaks, peak_n = {}, {}
    if cuda:
        sizes = [512, 1024] if args.smoke else [4096, 8192]
        for key, dt, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("bf16", torch.bfloat16, False)):  # fmt: skip
            peaks[key], peak_n[key] = matmul_peak_cuda(sizes, dt, tf32)
            print(
                f"matmul peak {key}: {peaks[key] / 1e12:.1f} TFLOP/s (n={peak_n[key]})", flush=True
            )
    else:
        sizes = [256, 512] if args.smoke else [1024, 2048, 4096]
        for key, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            peaks[key], peak_n[key] = matmul_peak(sizes, dt, budget_s=2 if args.smoke else 30)
            print(
                f"matmul peak {key}: {peaks[key] / 1e9:.1f} GFLOP/s (n={peak_n[key]})", flush=True
            )

    d = common.model_dir(name)
    tok = AutoTokenizer.from_pretrained(d)

    def make_model():
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).to(device)

    model = make_model().eval()
    sh = common.model_shape(model)
    held = load_items(BUNDLED, load_taxonomy("schwartz")).heldout()
    scenes = held.scenes()[: 1 if args.smoke else len(held.scenes()) if cuda else 3]
    items = held.subset(it for it in held if it.scene_id in set(scenes))
    rows, notes = bench_scoring(model, tok, items, reps, peaks, device)
    for r in rows:
        print(r, flush=True)
    steps = 1 if args.smoke else args.steps or (20 if cuda else 3)
    train_models = {}
    settings = [(False, 4), (True, 4)] + ([(True, 16)] if cuda else [])
    for lora, pairs in settings:
        row, note, m = bench_training(name, make_model, tok, steps, peaks, lora, device,
                                      bf16=cuda, pairs=pairs)  # fmt: skip
        rows.append(row)
        notes.append(note)
        if pairs == 4:
            train_models[lora] = m
        else:
            del m
        print(row, flush=True)

    header = ["run", "throughput", "useful GFLOP/s", "MFU (useful)", "MFU (incl. padding)",
              "peak GPU MiB" if cuda else "peak RSS MiB"]  # fmt: skip
    tab = common.table(header, rows)
    print(tab, flush=True)

    cmd = ("python benchmarks/bench_mfu.py" + (f" --models {args.models}" if args.models else "")
           + (" --device cuda" if cuda else ""))  # fmt: skip
    if cuda:
        peak_line = ("Measured matmul peak (GPU, best of n=" + "/".join(map(str, sizes)) + "): "
                     + ", ".join(f"{k} {peaks[k] / 1e12:.1f} TFLOP/s (n={peak_n[k]})" for k in peaks)
                     + ". MFU of fp32 runs is against the fp32 (TF32 off) peak, bf16 autocast "
                       "against the bf16 peak.")  # fmt: skip
    else:
        peak_line = (f"Measured matmul peak: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s (n={peak_n['fp32']}), "
                     f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s (n={peak_n['bf16']}).")  # fmt: skip
    head = [
        "## Model FLOPs utilisation on one GPU (`bench_mfu.py --device cuda`)"
        if cuda
        else "## Model FLOPs utilisation (`bench_mfu.py`)",
        f"{common.machine()}; {common.stamp()}; `{cmd}` "
        f"({(time.perf_counter() - t_start) / 60:.0f} min).",
        f"{peak_line} Model {name}: "
        f"N = {sh['N'] / 1e6:.1f}M non-embedding parameters, LM head d x V = {sh['d']} x "
        f"{sh['V']} ({sh['d'] * sh['V'] / 1e6:.1f}M, counted per row it is applied to), "
        f"{sh['total'] / 1e6:.1f}M in all.",
        tab,
        "\n".join(f"- {n}" for n in notes),
    ]
    section = "mfu_gpu" if cuda else "mfu"
    if cuda and args.out and not args.no_write:  # the table now, in case profiling fails or hangs
        common.write_markdown(args.out, section, "\n\n".join(head))

    # Where the time goes.
    reqs = LikelihoodProbe(progress=False).requests(tok, items.subset(tuple(items)[:20]))
    pad = tok.pad_token_id or 0
    try:
        prof_s, sh_s = common.profile_ops(
            lambda: Scorer(model, pad_token_id=pad, progress=False).score(reqs), device=device
        )
        prof_t, sh_t = common.profile_ops(train_models[False]._bench_step, top=10, device=device)
    except Exception as e:  # a profiler problem on some GPU stack must not lose the table
        if not cuda:
            raise
        print(f"profiling failed: {type(e).__name__}: {e}", flush=True)
        prof_s = prof_t = f"(profiling failed: {type(e).__name__}: {e})"
        sh_s = sh_t = {}
    print(prof_s, "\n", common.shares_line(sh_s), "\n", prof_t, "\n", common.shares_line(sh_t))
    elapsed = time.perf_counter() - t_start
    print(f"benchmark time {elapsed:.0f} s")
    if args.no_write:
        return
    by = "self GPU time" if cuda else "self CPU time"
    step_kind = "bf16 autocast" if cuda else ""
    head[1] = f"{common.machine()}; {common.stamp()}; `{cmd}` ({elapsed / 60:.0f} min)."
    md = [
        *head,
        f"### Profile: scoring (one scene, 20 items), top ops by {by}",
        prof_s,
        f"By kind: {common.shares_line(sh_s)}.",
        f"### Profile: one full fine-tuning step (8 rows{', ' + step_kind if step_kind else ''})",
        prof_t,
        f"By kind: {common.shares_line(sh_t)}.",
        INTERPRETATION,
    ]
    common.write_markdown(args.out, section, "\n\n".join(md))


INTERPRETATION = """### Interpretation

- **CPU (fp32): scoring runs at about 30% of the measured matmul peak, full fine-tuning at about
  26%, LoRA training at about 18%** (SmolLM2-135M; the peak is the best square fp32 matmul of this
  run, so both sides saw the same load). What bounds it, from the profiles: the matrix products
  are ~70% of the time but are skinny (a few hundred token rows by 576 against 1536 or 49152
  columns), which this BLAS runs well below its square-matrix peak; the rest is memory-bound
  elementwise work (RMSNorm's pow/mean/mul, SiLU, residual adds, copies: 21% of scoring, 26% of a
  training step) that does no counted FLOPs. LoRA counts only 4 N per token (no weight gradients
  of the frozen body) but still pays the adapters' small matmuls, their optimizer and the same
  elementwise work, hence the lower MFU. Padding is 3-5% of positions.
- **bf16 on this CPU** (AVX2 only, no AVX512-BF16 or AMX): autocast scoring is ~4x slower than
  fp32, and torch's plain bf16 matmul is slower still (0.9 GFLOP/s, a fallback path), so no bf16
  MFU is given: the "peak" is no bound there. fp32 is the CPU default for that reason.
- **GPU (H200, the `gpu` section):** about 1% at SmolLM2's size and these batches: kernel-launch
  bound (21 us matmuls, 1-6 us elementwise kernels). Larger models or batches, or CUDA graphs,
  are what would raise it."""


if __name__ == "__main__":
    main()
