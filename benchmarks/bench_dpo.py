"""DPO training throughput: our Lightning DPO (each reference strategy) vs TRL's `DPOTrainer`.

What is measured: pairs per second of the training loop, from the start of the first optimizer
step after ``--warm-steps`` warm-up steps to the end of training (model loading, tokenisation and
the reference precompute are outside the window; the precompute is timed on its own and reported
in its own column). Wall time is the headline; the process CPU time (one torch thread by default,
``--threads``) is reported too, as a check that other jobs on a shared machine did not skew the
ratios. Contenders, all in one process, alternating, ``--reps`` repetitions (see PLAN for the
per-model steps, repetitions and untimed rounds):

- ours ``precomputed`` / ``adapter_disabled`` / ``frozen_copy``: `vat.modules.DPOModule` under the
  `lightning.Trainer` built from ``conf/trainer`` with the loader of the run's data module (`vat.data.datamodule`)
  (our tokenisation, collator and epoch-shuffled sampler): the path ``python train.py`` runs, with
  the VAT callback, checkpoints, progress bar and loggers off (pure training throughput);
- ours ``precomputed, share_prompt=false``: the forward before prompt sharing (``--before`` adds
  it for every reference strategy) and, with ``--bf16``, ours under bf16 autocast;
- TRL ``online`` (its PEFT default: the adapter-disabled policy as reference) and TRL
  ``precompute_ref_log_probs=True``.

Same for all: the model (LoRA r16 all-linear from `vat.modules.common.build_policy` with the same
seed, so the adapters start identical), the training pairs (ours, token for token: TRL is given our
prompt/chosen/rejected ids, skipping its own tokenisation), their order (TRL's sampler is
sequential over the order our sampler yields), batch size, max length, beta, learning rate
(AdamW, weight decay 0, constant schedule, no warm-up), gradient clipping at norm 1, fp32, no
gradient checkpointing. ``data.test_fraction=0.25`` gives 36 training pairs, a multiple of the
batch size, so no epoch ends with a partial batch (TRL's sequential sampler could not mirror one).

Agreement: the per-step training losses of every contender against TRL online (step 0 must be
ln 2; the max abs difference over all steps is reported), and our precomputed reference log-probs
against TRL's.

    python benchmarks/bench_dpo.py                 # all three models, RESULTS.md section "dpo"
    python benchmarks/bench_dpo.py --smoke --no-write
    python benchmarks/bench_dpo.py --device cuda --out dpo_gpu.md   # one GPU, bf16-mixed (GPU_PLAN)

On ``--device cuda`` (``--precision`` bf16-mixed unless given): ours runs with
``trainer.accelerator=gpu``, TRL with ``bf16=True`` on the GPU, the reference precompute on the GPU
(fp32, as `vat.train` computes it); contenders ours precomputed / adapter_disabled / precomputed
with ``share_prompt=false`` and both TRL modes; steps, repetitions and batch from ``GPU_PLAN``; the
section goes to RESULTS.md as "dpo_gpu" (or to ``--out``), with the peak GPU memory per contender.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass

import common
import lightning as L
import torch

# Per model: optimizer steps per run, the most timed repetitions, untimed warm-up rounds. SmolLM2
# takes ~10 s (ours) to ~50 s (TRL online) per step on one core: few steps, its first step warms up.
# --bf16 applies to the tiny models only (bf16 autocast makes SmolLM2 steps minutes long here).
PLAN = {"tiny": (16, 99, 1), "tiny_4m": (10, 99, 1), "smollm2_135m_instruct": (3, 2, 0)}
NO_BF16 = {"smollm2_135m_instruct"}
BATCH, MAX_LENGTH, BETA, LR, SEED = 4, 256, 0.1, 5e-4, 0
REFERENCES = ("precomputed", "adapter_disabled", "frozen_copy")
# On one GPU: (steps, most repetitions, untimed rounds, batch pairs, data.test_fraction). A step is
# tens of ms there, so more steps per run; batch 8 needs a pair count divisible by 8 (0.5 -> 24).
# No untimed round: each run's first optimizer step (CUDA, cuBLAS, Triton warm-up) is untimed.
GPU_PLAN = {"tiny": (30, 3, 0, 8, 0.5), "smollm2_135m_instruct": (30, 3, 0, 8, 0.5)}
GPU_REFERENCES = ("precomputed", "adapter_disabled")


# ------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    """Everything both sides share for one model: config, tokenizer, pairs and their order."""

    model: str
    cfg: object
    tokenizer: object
    dataset: object
    collate: object
    order: list[int]  # dataset indices in training order, steps x batch long
    steps: int
    ref: torch.Tensor  # (N, 2) our precomputed reference log-probs
    ref_seconds: dict[bool, float]  # our reference precompute by share_prompt (model loaded)


def prepare(model: str, steps: int, batch: int = BATCH, max_length: int = MAX_LENGTH,
            extra: list[str] = (), test_fraction: float = 0.25, device: str = "cpu") -> Setup:  # fmt: skip
    from hydra.utils import instantiate

    from vat.data.sampling import EpochShuffleSampler
    from vat.models import as_spec, load_model, load_tokenizer
    from vat.reference import compute_logps as compute_reference_logps
    from vat.run import build_items, setup

    cfg = common.train_config([
        f"model={model}",
        "method=dpo", f"method.module.loss.beta={BETA}", f"method.module.optimizer.lr={LR}",
        "method.module.optimizer.weight_decay=0.0", "method.module.scheduler.num_warmup_steps=0",
        f"batch.micro_size={batch}", f"batch.global_size={batch}", f"prompt.max_length={max_length}",
        "trainer.precision=32-true", "trainer.gradient_clip_val=1.0", f"data.test_fraction={test_fraction}",
        f"seed={SEED}", "logger=csv", *extra,
    ])  # fmt: skip
    setup(cfg)
    items = build_items(cfg)
    tokenizer = load_tokenizer(as_spec(cfg.model))
    target = items.taxonomy.normalize_value(cfg.value.name)
    data = instantiate(cfg.method.datamodule)(items=items, target=target, tokenizer=tokenizer)
    dataset, collate = data.dataset, data.collate
    if len(dataset) % batch:
        raise SystemExit(f"{len(dataset)} pairs is not a multiple of the batch {batch}")
    sampler, order, epoch = EpochShuffleSampler(len(dataset), cfg.seed), [], 0
    while len(order) < steps * batch:  # the order Lightning's epochs draw, epoch after epoch
        sampler.set_epoch(epoch)
        order += list(sampler)
        epoch += 1
    base = load_model(as_spec(cfg.model), with_lora=False)
    ref_seconds = {}
    if device != "cpu":
        base = base.to(device)
        reference_on_device(base, dataset, collate, batch, True, device)  # warm-up (CUDA init)
    for share in (False, True):  # the last one (the default forward) is kept
        t0 = time.perf_counter()
        if device == "cpu":
            ref = compute_reference_logps(base, dataset, collate, batch, False, share_prompt=share)
        else:
            ref = reference_on_device(base, dataset, collate, batch, share, device)
        ref_seconds[share] = time.perf_counter() - t0
    del base
    if device != "cpu":
        torch.cuda.empty_cache()
    return Setup(model, cfg, tokenizer, dataset, collate, order[: steps * batch], steps, ref,
                 ref_seconds)  # fmt: skip


@torch.no_grad()
def reference_on_device(model, dataset, collate, batch_size: int, share_prompt: bool,
                        device: str) -> torch.Tensor:  # fmt: skip
    """`vat.reference.compute_logps` (summed log-probs, fp32) with each batch moved to
    `device` (which `vat.reference` leaves to the caller); (N, 2) float64 on the CPU."""
    from torch.utils.data import DataLoader

    from vat.forward import pair_logps

    ref = torch.zeros(len(dataset), 2, dtype=torch.float64)
    for b in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        idx = b["index"]
        moved = {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
        logps, _ = pair_logps(model, moved, share_prompt=share_prompt)
        logps = logps.double().cpu()
        ref[idx, 0], ref[idx, 1] = logps[: len(idx)], logps[len(idx) :]
    return ref


def fresh_policy(cfg):
    """The LoRA policy exactly as `DPOModule.configure_model` builds it after `seed_everything`."""
    from vat.modules.common import build_policy

    L.seed_everything(SEED, verbose=False)
    return build_policy(cfg.model)


# --------------------------------------------------------------------------------------- ours
class LoopTimer(L.Callback):
    """Times the fit loop (wall and process CPU time) from the start of optimizer step `warm` to the
    end of training, and records each step's loss and batch indices (for the agreement checks)."""

    def __init__(self, warm: int):
        self.warm, self.start, self.stop = warm, None, None
        self.losses: list[float] = []
        self.indices: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.warm and self.start is None:
            self.start = clocks()
        self.indices += batch["index"].tolist()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))

    def on_train_end(self, trainer, pl_module) -> None:
        self.stop = clocks()


def clocks() -> tuple[float, float]:
    """(wall, process CPU) seconds. With one torch thread the CPU time hardly moves when other jobs
    share the machine, so its ratios are a check on the wall-time ratios."""
    return time.perf_counter(), time.process_time()


def measured(start, stop, **result) -> common.Measured:
    return common.Measured(stop[0] - start[0], {"cpu": stop[1] - start[1], **result})


def run_ours(s: Setup, reference: str, warm: int, overrides: list[str] = ()) -> common.Measured:
    """One `Trainer.fit` of our DPO module; returns the loop time and the per-step losses."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from vat.data.sampling import EpochShuffleSampler, ResumableDataLoader

    cfg = s.cfg.copy()
    OmegaConf.update(cfg, "method.module.reference", reference)
    for o in overrides:
        k, v = o.split("=", 1)
        OmegaConf.update(cfg, k, yaml_value(v))
    L.seed_everything(SEED, verbose=False)
    loader = ResumableDataLoader(s.dataset, batch_size=cfg.batch.micro_size, collate_fn=s.collate,
                                 sampler=EpochShuffleSampler(len(s.dataset), cfg.seed))  # fmt: skip
    module = instantiate(cfg.method.module)
    if reference == "precomputed":
        module.set_reference_logps(s.ref)
    timer = LoopTimer(warm)
    trainer = instantiate(
        cfg.trainer, max_steps=s.steps, callbacks=[timer], logger=False, strategy="auto",
        enable_checkpointing=False, enable_progress_bar=False, accumulate_grad_batches=1,
        use_distributed_sampler=False, default_root_dir=tempfile.mkdtemp(prefix="bench_"),
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)
    if timer.indices != s.order:
        raise AssertionError("our loader did not yield the expected order")
    return measured(timer.start, timer.stop, losses=timer.losses)


def yaml_value(v: str):
    import yaml

    return yaml.safe_load(v)


# ---------------------------------------------------------------------------------------- TRL
def trl_available() -> bool:
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def run_trl(s: Setup, precompute: bool, warm: int, device: str = "cpu",
            bf16: bool = False) -> common.Measured:  # fmt: skip
    """One `DPOTrainer.train()` on our pairs in our order; loop time and per-step losses."""
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class Bench(DPOTrainer):
        """TRL's trainer, given our token ids (no re-tokenisation) and timing its precompute."""

        losses: list[float]
        precompute_seconds = 0.0

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # already {"prompt_ids", "chosen_ids", "rejected_ids"}

        def _precompute_ref_logps(self, dataset, name, batch_size):
            t0 = time.perf_counter()
            out = super()._precompute_ref_logps(dataset, name, batch_size)
            self.precompute_seconds += time.perf_counter() - t0
            return out

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.losses.append(float(loss.detach()))
            return loss

    class Timer(TrainerCallback):
        start = stop = None

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == warm and self.start is None:
                self.start = clocks()

        def on_train_end(self, args, state, control, **kw):
            self.stop = clocks()

    rows = []
    for i in s.order:
        ex = s.dataset[i]
        n_prompt = ex["chosen_labels"].count(-100)
        rows.append({"prompt_ids": ex["chosen_input_ids"][:n_prompt],
                     "chosen_ids": ex["chosen_input_ids"][n_prompt:],
                     "rejected_ids": ex["rejected_input_ids"][n_prompt:]})  # fmt: skip
    out_dir = tempfile.mkdtemp(prefix="bench_trl_")
    args = DPOConfig(
        output_dir=out_dir, per_device_train_batch_size=s.cfg.batch.micro_size,
        gradient_accumulation_steps=1, learning_rate=LR, beta=BETA, max_length=s.cfg.prompt.max_length,
        bf16=bf16, fp16=False, report_to="none", logging_steps=1, max_steps=s.steps,
        save_strategy="no", dataloader_num_workers=0, dataloader_pin_memory=False,
        precompute_ref_log_probs=precompute, gradient_checkpointing=False,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, optim="adamw_torch",
        max_grad_norm=1.0, train_sampling_strategy="sequential", seed=SEED, disable_tqdm=True,
        use_cpu=device == "cpu", loss_type=["sigmoid"],
    )  # fmt: skip
    timer = Timer()
    trainer = Bench(model=fresh_policy(s.cfg), ref_model=None, args=args,
                    train_dataset=Dataset.from_list(rows), processing_class=s.tokenizer,
                    callbacks=[timer])  # fmt: skip
    trainer.losses = []
    if getattr(trainer.model, "is_gradient_checkpointing", False):
        raise AssertionError("TRL turned gradient checkpointing on")
    trainer.train()
    ref = None
    if precompute:
        ds = trainer.train_dataset
        ref = torch.tensor([ds["ref_chosen_logps"], ds["ref_rejected_logps"]]).T
    return measured(timer.start, timer.stop, losses=trainer.losses, ref=ref,
                    precompute_seconds=trainer.precompute_seconds)  # fmt: skip


# -------------------------------------------------------------------------------------- report
UNSHARED = "share_prompt=false"  # the forward before prompt sharing: two full sequences per pair


def max_diff(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def contenders_for(s: Setup, warm: int, variants: set[str], references=REFERENCES,
                   device: str = "cpu", bf16: bool = False) -> dict:  # fmt: skip
    """name -> run. Variants: ``before`` adds every reference strategy with the unshared forward
    (precomputed always has it), ``bf16`` adds precomputed under bf16 autocast."""
    runs = {}
    for r in references:
        runs[f"ours {r}"] = lambda r=r: run_ours(s, r, warm)
        if "before" in variants or r == "precomputed":
            runs[f"ours {r}, {UNSHARED}"] = lambda r=r: run_ours(
                s, r, warm, ["method.module.share_prompt=false"]
            )
    if "bf16" in variants:
        runs["ours precomputed, bf16-mixed"] = lambda: run_ours(
            s, "precomputed", warm, ["trainer.precision=bf16-mixed"]
        )
    if trl_available():
        runs["TRL online"] = lambda: run_trl(s, False, warm, device, bf16)
        runs["TRL precompute"] = lambda: run_trl(s, True, warm, device, bf16)
    return runs


def bench_model(model: str, reps: int, warm: int, steps: int, variants: set[str],
                warm_rounds: int = 1, device: str = "cpu", precision: str = "32-true",
                batch: int = BATCH, test_fraction: float = 0.25,
                deadline: float | None = None) -> tuple[str, dict]:  # fmt: skip
    cuda = device != "cpu"
    extra = [f"trainer.precision={precision}"]
    if cuda:
        extra += ["trainer.accelerator=gpu", "trainer.devices=1"]
    s = prepare(model, steps, batch=batch, extra=extra, test_fraction=test_fraction, device=device)
    n_pairs = (steps - warm) * s.cfg.batch.micro_size
    cpu: dict[str, list[float]] = {}  # process CPU seconds of each timed run
    gpu_mib: dict[str, float] = {}  # peak GPU memory allocated per contender

    def keep_cpu(name, fn):
        def run():
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            m = fn()
            cpu.setdefault(name, []).append(m.result["cpu"])
            if cuda:
                gpu_mib[name] = max(
                    gpu_mib.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**20
                )
            return m

        return run

    refs = GPU_REFERENCES if cuda else REFERENCES
    bf16 = precision.startswith("bf16")
    runs = {n: keep_cpu(n, fn)
            for n, fn in contenders_for(s, warm, variants, refs, device, bf16).items()}  # fmt: skip
    t = common.alternate(runs, n_pairs, reps=reps, warmup=warm_rounds, deadline=deadline,
                         progress=cuda)  # fmt: skip
    cpu = {n: v[warm_rounds:] for n, v in cpu.items()}  # without the untimed warm-up rounds
    peer = "TRL online" in t

    def ratio(a: common.Timing, b: str, by_cpu: bool = False) -> str:
        if not peer:
            return "peer missing"
        if by_cpu:
            rate = {n: statistics.median(n_pairs / c for c in cpu[n]) for n in (a.name, b)}
            return f"{rate[a.name] / rate[b]:.2f}x"
        return f"{a.median / t[b].median:.2f}x"

    header = ["contender", "pairs/s (median)", "min-max", "ratio vs TRL online",
              "ratio vs TRL precompute", "CPU-time ratio vs TRL online", "peak RSS MiB",
              "precompute s", f"max abs loss diff vs TRL online ({steps} steps)"]  # fmt: skip
    if cuda:
        header.insert(7, "peak GPU MiB")
    rows = []
    for name, x in t.items():
        pre_s = (f"{s.ref_seconds[UNSHARED not in name]:.2f}" if name.startswith("ours precomputed")
                 else f"{x.result['precompute_seconds']:.2f}" if name == "TRL precompute"
                 else "")  # fmt: skip
        diff = (f"{max_diff(x.result['losses'], t['TRL online'].result['losses']):.1e}"
                if peer else "n/a")  # fmt: skip
        rows.append([name, x.median, f"{min(x.rates):.3g}-{max(x.rates):.3g}",
                     ratio(x, "TRL online"), ratio(x, "TRL precompute"),
                     ratio(x, "TRL online", by_cpu=True), f"{x.peak_rss:.0f}", pre_s, diff])  # fmt: skip
        if cuda:
            rows[-1].insert(7, f"{gpu_mib.get(name, 0.0):.0f}")
    losses = {n: x.result["losses"] for n, x in t.items()}
    agree = {"ln2": round(math.log(2), 6),
             "step0_loss": {n: round(v[0], 6) for n, v in losses.items()}}  # fmt: skip
    if peer:
        trl_ref = t["TRL precompute"].result["ref"]
        ours_ref = s.ref[torch.tensor(s.order[: len(trl_ref)])]
        agree["ref_logps_max_abs_diff_vs_TRL"] = float((trl_ref.double() - ours_ref).abs().max())
    agree["first_losses"] = {n: [round(v, 5) for v in x[:5]] for n, x in losses.items()}
    agree["verdict"] = verdict(t) if peer else "peer missing: no ratios"
    done = min(len(x.seconds) for x in t.values())
    if done < reps:
        agree["timed_rounds"] = f"{done} of {reps} (time budget)"
    return common.table(header, rows), agree


TARGETS = {"ours precomputed": 2.0, "ours adapter_disabled": 1.3, "ours frozen_copy": 1.3}


def verdict(t: dict) -> str:
    """The issue's targets (pairs/s ours over TRL online, medians): met or missed."""
    out = []
    for name, target in TARGETS.items():
        if name not in t:
            continue
        r = t[name].median / t["TRL online"].median
        out.append(
            f"{name} {r:.2f}x TRL online (target {target}x: {'met' if r >= target else 'MISSED'})"
        )
    r = t["ours precomputed"].median / t["TRL precompute"].median
    return "; ".join(out) + f"; ours precomputed {r:.2f}x TRL precompute"


NOTES = """How to read: pairs/s is the fit loop after one warm-up step (model loading, tokenisation
and the reference precompute outside); "precompute s" is the one-off reference pass (ours over all
36 pairs with the model loaded, TRL's `_precompute_ref_log_probs` over the run's pairs). The
CPU-time ratio uses process CPU seconds (one torch thread): other jobs on the shared machine hardly
move it, so it checks the wall-time ratio. Why ours is faster: the pair's prompt runs once
(`method.module.share_prompt`: prompt + chosen + rejected packed in one row, the rejected tokens
masked from the chosen ones), about 37% fewer tokens than two full sequences, and the LM head and
its log-softmax run on the response tokens only; TRL 1.16 on a CPU runs its chunked fused LM head
over every position (its compaction to labelled tokens is for Triton devices only) and computes
entropy, mean logits and top-1 accuracy each step. The `share_prompt=false` rows are our forward
before this change (two full sequences, full logits). bf16 autocast, where measured, is several
times slower on this CPU (AVX2 only: no AVX512-BF16 or AMX), so fp32 is the right setting here."""

NOTES_GPU = """How to read (one GPU, `--device cuda`): pairs/s is the fit loop after one warm-up step
(the CUDA context, cuBLAS handles and Triton kernels warm up in it and before it); ours under
Lightning `bf16-mixed` (fp32 weights, bf16 autocast), TRL with `bf16=True` (the same autocast); both
read the loss back every step (a host sync each step on both sides). "precompute s" is our fp32
reference pass over all pairs on the GPU (TRL: its `_precompute_ref_log_probs`, under autocast, so
the ref log-prob difference vs TRL includes bf16 rounding). The CPU-time ratio is the process CPU
time (launch overhead plus the host waiting on the GPU): a check, not a headline. Peak GPU MiB is
`torch.cuda.max_memory_allocated` over each contender's runs. Weights may be a random init of the
model's shape (the GPU check has no network): same FLOPs, meaningless losses beyond step 0."""


def main() -> None:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--warm-steps", type=int, default=1, help="optimizer steps outside the timing")
    p.add_argument(
        "--before",
        action="store_true",
        help=f"add every reference strategy with {UNSHARED} (the forward before sharing)",
    )
    p.add_argument("--bf16", action="store_true", help="add ours precomputed under bf16 autocast")
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: robust on a machine shared with other jobs)")  # fmt: skip
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda: one GPU, the GPU_PLAN, bf16-mixed unless --precision")  # fmt: skip
    p.add_argument("--precision", default=None,
                   help="Lightning precision of ours (TRL: bf16 when it starts with bf16); "
                        "default 32-true on cpu, bf16-mixed on cuda")  # fmt: skip
    p.add_argument("--out", default=None,
                   help="write the markdown section to this file instead of RESULTS.md")  # fmt: skip
    p.add_argument("--budget-s", type=float, default=None,
                   help="start no timed round after this many seconds (one round at least)")  # fmt: skip
    args = p.parse_args()
    t_main = time.perf_counter()
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA GPU visible")
    precision = args.precision or ("bf16-mixed" if cuda else "32-true")
    deadline = t_main + args.budget_s if args.budget_s else None
    torch.set_num_threads(args.threads)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    models = (args.models.split(",") if args.models
              else ["tiny"] if args.smoke
              else ["smollm2_135m_instruct"] if cuda else list(PLAN))  # fmt: skip
    asked = {v for v in ("before", "bf16") if getattr(args, v)}
    out = [f"Machine: {common.machine()}", f"Date: {common.stamp()}",
           f"Command: `python benchmarks/bench_dpo.py{' --smoke' if args.smoke else ''} "
           f"--reps {args.reps} --threads {args.threads}{' --bf16' if args.bf16 else ''}"
           f"{' --before' if args.before else ''}"
           f"{' --device cuda' if cuda else ''}"
           f"{f' --precision {precision}' if args.precision or cuda else ''}`", ""]  # fmt: skip
    if not trl_available():
        print("TRL is not importable: only our side runs (the peer is missing)")
        out.append("TRL not importable: peer missing, only ours measured.")
    title = ("## DPO training throughput on one GPU (bench_dpo.py --device cuda)" if cuda
             else "## DPO training throughput (bench_dpo.py)")  # fmt: skip
    for m in models:
        steps, most, warm_rounds = PLAN.get(m, (10, 99, 1))
        batch, test_fraction = BATCH, 0.25
        if cuda:
            steps, most, warm_rounds, batch, test_fraction = GPU_PLAN.get(m, (30, 3, 0, 8, 0.5))
        reps = min(args.reps, most)
        if args.smoke:
            steps, reps, warm_rounds = 3, 1, 0
        t0 = time.perf_counter()
        variants = asked - {"bf16"} if m in NO_BF16 or cuda else asked
        tab, agree = bench_model(m, reps, args.warm_steps, steps, variants, warm_rounds,
                                 args.device, precision, batch, test_fraction, deadline)  # fmt: skip
        where = "fp32" if precision == "32-true" else precision
        if cuda:
            where += f" on {torch.cuda.get_device_name()}"
        block = (f"### {m}: batch {batch} pairs, max_length {MAX_LENGTH}, beta {BETA}, lr {LR}, "
                 f"{where}, {steps} steps ({args.warm_steps} warm-up) x {reps} reps "
                 f"(+{warm_rounds} untimed round)\n\n{tab}\n\nAgreement: {agree}\n\n"
                 f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
        print(block, flush=True)
        out.append(block)
        if not args.no_write and args.out:  # each model as soon as it is done
            common.write_markdown(args.out, "dpo_gpu", title + "\n\n" + "\n\n".join(out))
    out.append(NOTES_GPU if cuda else NOTES)
    if not args.no_write:
        common.write_markdown(args.out, "dpo_gpu" if cuda else "dpo",
                              title + "\n\n" + "\n\n".join(out))  # fmt: skip


if __name__ == "__main__":
    main()
