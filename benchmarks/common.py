"""What every benchmark shares: the machine, alternating timed runs, peak RSS, tables, RESULTS.md.

A benchmark runs ours and the peer in the same process, alternating, several repetitions, on the
same model, data and hyperparameters; it reports the median throughput, the min-max, the ratio
ours/peer (of medians), the peak RSS while each ran, and whether the results agree. Tables are
printed and written into their own section of ``benchmarks/RESULTS.md`` (between
``<!-- bench:NAME -->`` markers), so each benchmark updates only its part.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# Offline, quiet, caches in the repo (as in the tests), unless the caller set them.
for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false",
               "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}.items():  # fmt: skip
    os.environ.setdefault(_k, _v)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true",
                   help="seconds-long run on the tiny model (checks the benchmark itself)")  # fmt: skip
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per contender")
    p.add_argument("--models", default=None, help="comma-separated model configs (conf/model/)")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md as is")
    return p


# ------------------------------------------------------------------------------------ machine
def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> str:
    """One line: CPU or GPU, threads, memory, library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    try:
        import psutil

        mem = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM"
    except ImportError:
        mem = "RAM unknown"
    parts = [f"{cpu} ({os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}, "
             f"{'/'.join(simd) or 'no AVX2'})", mem, f"torch {torch.__version__}"]  # fmt: skip
    if torch.cuda.is_available():
        parts.insert(0, f"GPU {torch.cuda.get_device_name(0)}")
    import transformers

    parts.append(f"transformers {transformers.__version__}")
    return ", ".join(parts)


# ------------------------------------------------------------------------------------ memory
class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs (sampled every 20 ms)."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self.proc, self.interval, self.peak = psutil.Process(), interval, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self.peak = self.proc.memory_info().rss / 2**20
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss / 2**20)


# ------------------------------------------------------------------------------------ timing
@dataclass
class Timing:
    name: str
    work: float  # units of work per run (pairs, items, tokens)
    seconds: list[float] = field(default_factory=list)
    peak_rss: float = 0.0
    result: object = None  # the last run's output, for the agreement check

    @property
    def rates(self) -> list[float]:
        return [self.work / s for s in self.seconds]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


@dataclass
class Measured:
    """What a contender returns when it times itself: `alternate` then records ``seconds`` (e.g.
    the training loop only, without model loading) instead of the call's wall time, and keeps
    ``result`` as the run's output."""

    seconds: float
    result: object = None


def alternate(contenders: dict[str, Callable[[], object]], work: float | dict[str, float],
              reps: int, warmup: int = 1, deadline: float | None = None,
              progress: bool = False) -> dict[str, Timing]:  # fmt: skip
    """Run each contender `warmup` times untimed, then `reps` timed rounds, alternating
    (A B A B ...) so that drifts of the machine hit both alike. A contender returning `Measured`
    is timed by its own ``seconds``; the peak RSS always covers the whole call. With `deadline`
    (a ``time.perf_counter()`` value), no timed round starts after it once one round is done
    (fewer repetitions rather than none when time runs short). `progress` prints each run."""
    works = work if isinstance(work, dict) else dict.fromkeys(contenders, work)
    out = {n: Timing(n, works[n]) for n in contenders}
    for _ in range(warmup):
        for n, fn in contenders.items():
            t0 = time.perf_counter()
            res = fn()
            out[n].result = res.result if isinstance(res, Measured) else res
            if progress:
                print(f"  warm-up {n}: {time.perf_counter() - t0:.1f} s", flush=True)
    for rep in range(reps):
        if deadline is not None and rep > 0 and time.perf_counter() > deadline:
            print(f"  time budget spent: {rep} of {reps} timed rounds", flush=True)
            break
        for n, fn in contenders.items():
            with PeakRSS() as mem:
                t0 = time.perf_counter()
                res = fn()
                wall = time.perf_counter() - t0
            if isinstance(res, Measured):
                wall, res = res.seconds, res.result
            out[n].result = res
            out[n].seconds.append(wall)
            out[n].peak_rss = max(out[n].peak_rss, mem.peak)
            if progress:
                print(
                    f"  round {rep + 1} {n}: {wall:.2f} s, {out[n].work / wall:.3g}/s", flush=True
                )
    return out


# ------------------------------------------------------------------------------------ tables
def table(header: list[str], rows: list[list[object]]) -> str:
    def cell(v: object) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def rate_row(t: Timing, unit: str, ref: Timing | None = None) -> list[object]:
    """[contender, median unit/s, min-max, ratio vs ref, peak RSS MiB]."""
    lo, hi = min(t.rates), max(t.rates)
    ratio = f"{t.median / ref.median:.2f}x" if ref is not None else "1.00x (peer)"
    return [t.name, t.median, f"{lo:.3g}-{hi:.3g}", ratio, f"{t.peak_rss:.0f}"]


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the ``<!-- bench:name -->`` section of RESULTS.md."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def write_markdown(out: str | Path | None, name: str, markdown: str) -> None:
    """The section into `out` (a file of its own, overwritten) if given, else RESULTS.md."""
    if out is None:
        write_section(name, markdown)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(markdown.strip() + "\n")


def sync(device: str | torch.device = "cpu") -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a timer must wait for it)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def train_config(overrides: list[str] = ()):
    """The training config (conf/train.yaml + `overrides`) as ``train.py`` sees it: resolved Hydra
    runtime, run directory in a fresh temporary folder, no ``hydra`` node."""
    import tempfile

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import vat.config  # noqa: F401  (schemas)

    conf = Path(__file__).resolve().parents[1] / "conf"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = tempfile.mkdtemp(prefix="bench_")
        cfg.hydra.runtime.cwd = str(conf.parent)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    GlobalHydra.instance().clear()
    return cfg


def model_dir(name: str) -> str:
    """A local HF directory for a model config (conf/model/<name>.yaml), built offline if needed."""
    from hydra import compose, initialize_config_dir

    import vat.config  # noqa: F401  (schemas)
    from vat.models import as_spec
    from vat.models.loading import resolve_path

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("train", overrides=[f"model={name}"])
    return resolve_path(as_spec(cfg.model))


# ------------------------------------------------------------------------------------ profile
def profile_ops(fn: Callable[[], object], top: int = 8,
                device: str = "cpu") -> tuple[str, dict[str, float]]:  # fmt: skip
    """Where one run of `fn` spends its time (torch.profiler): a markdown table of the `top`
    ops by self CPU time, and the share of self CPU time per category (matmul, attention,
    softmax, elementwise/copies, other). On CUDA: by the GPU time of the kernels each op
    launched itself (ops only, so no kernel is counted twice)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.device(device).type == "cuda"
    acts = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=acts) as prof:
        fn()
        sync(device)
    ev = list(prof.key_averages())
    if cuda:
        from torch.autograd import DeviceType

        ev = [e for e in ev if e.device_type == DeviceType.CPU]

        def self_t(e):
            return getattr(e, "self_device_time_total", None) or getattr(
                e, "self_cuda_time_total", 0
            )
    else:

        def self_t(e):
            return e.self_cpu_time_total

    ev = sorted((e for e in ev if self_t(e) > 0), key=lambda e: -self_t(e))
    total = sum(self_t(e) for e in ev) or 1
    shares: dict[str, float] = {}
    for e in ev:
        shares[_op_kind(e.key)] = shares.get(_op_kind(e.key), 0.0) + self_t(e) / total
    rows = [[f"`{e.key}`", f"{100 * self_t(e) / total:.1f}%", e.count,
             f"{self_t(e) / max(e.count, 1) / 1e3:.{3 if cuda else 2}f}"] for e in ev[:top]]  # fmt: skip
    return table(["op", "self GPU" if cuda else "self CPU", "calls", "ms/call"], rows), shares


def _op_kind(name: str) -> str:
    n = name.removeprefix("aten::")
    if n in ("mm", "addmm", "bmm", "baddbmm", "matmul", "linear", "addmv", "mv", "dot"):
        return "matmul"
    if "scaled_dot_product" in n or "flash_attention" in n:
        return "attention"
    if "softmax" in n:
        return "softmax"
    if n in ("mul", "add", "sub", "div", "pow", "rsqrt", "mean", "sum", "neg", "silu", "cat",
             "copy_", "where", "exp", "add_", "mul_", "div_", "addcmul_", "addcdiv_", "sqrt",
             "lerp_", "silu_backward", "fill_", "zero_", "index", "gather", "index_select",
             "embedding", "embedding_dense_backward", "clone", "contiguous", "_to_copy",
             "masked_fill", "sqrt_", "_foreach_mul_", "_foreach_add_", "_foreach_addcmul_",
             "_foreach_addcdiv_", "_foreach_sqrt", "_foreach_div_", "_foreach_lerp_",
             "nll_loss_forward", "nll_loss_backward", "cumsum", "index_add_", "repeat_interleave",
             "threshold_backward", "mul_backward", "_log_softmax_backward_data"):  # fmt: skip
        return "elementwise/copies"
    return "other"


def shares_line(shares: dict[str, float]) -> str:
    return ", ".join(
        f"{k} {100 * v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1])
    )


# ------------------------------------------------------------------------------------ FLOPs
def model_shape(model) -> dict[str, int]:
    """N (non-embedding parameters: the transformer body), d, V and the total of a causal LM.
    The LM head (d x V; tied to the embedding on small models) is left out of N: its FLOPs are
    counted per position it is applied to (`TokenCounter`)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    emb = base.get_input_embeddings().weight
    head = base.get_output_embeddings().weight
    total = sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)
    tied = head.data_ptr() == emb.data_ptr()
    return {"N": total - emb.numel() - (0 if tied else head.numel()), "d": emb.shape[1],
            "V": head.shape[0], "total": total}  # fmt: skip


class TokenCounter:
    """Counts what the forwards of `model` run: positions (batch x width, padding included),
    real tokens (attention mask), and LM-head rows (logits computed). Understands 2D padding
    masks and the 4D (tree) masks of packed batches, and flat (kept positions, V) logits."""

    def __init__(self, model):
        self.positions = self.real = self.head_rows = self.forwards = 0
        self._handle = model.register_forward_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs, out) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        b, w = ids.shape
        mask = kwargs.get("attention_mask")
        self.forwards += 1
        self.positions += b * w
        if mask is None:
            self.real += b * w
        elif mask.dim() == 2:
            self.real += int(mask[:, -w:].sum())
        else:  # (b, 1, w, kv + w): a real token attends to itself
            diag = mask[:, 0, :, -w:].diagonal(dim1=-2, dim2=-1)
            self.real += int(diag.sum() if diag.dtype == torch.bool else (diag == 0).sum())
        logits = getattr(out, "logits", None)
        if logits is not None:
            self.head_rows += (
                logits.shape[0] if logits.dim() == 2 else logits.shape[0] * logits.shape[1]
            )

    def flops(self, shape: dict[str, int]) -> float:
        """2 N per position run (padding included) + 2 d V per LM-head row."""
        return 2.0 * shape["N"] * self.positions + 2.0 * shape["d"] * shape["V"] * self.head_rows

    def close(self) -> None:
        self._handle.remove()


def count(model, fn: Callable[[], object]) -> TokenCounter:
    """What one call of `fn` runs through `model`."""
    c = TokenCounter(model)
    try:
        fn()
    finally:
        c.close()
    return c
