"""`train(cfg)`: what ``python train.py`` runs.

method=sft|dpo: fine-tune toward the target value with Lightning while `VATCallback` writes the VAT
curve; method=prompting: no training, the same measurement under a value prompt. Order of work:
config and data checks (seconds) -> tokenizer and training set -> reference log-probs and the
value-gap check (DPO) -> Trainer.fit -> HF export -> final report.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from vat import values as V
from vat.cache import build_once, cache_dir
from vat.checkpoint import AtomicCheckpointIO, recover_checkpoints
from vat.data.collate import PreferenceCollator, SFTCollator
from vat.data.datasets import PreferenceDataset, SFTDataset
from vat.data.prompt import TrainPrompt
from vat.data.sampling import EpochShuffleSampler, ResumableDataLoader
from vat.evaluate import measure, model_key
from vat.forward import pair_logps
from vat.launch import check_launch, walltime_signal_guard
from vat.loggers import guard_all
from vat.metrics import to_jsonable
from vat.models import as_spec, load_model, load_tokenizer
from vat.modules import is_preference, is_prompting
from vat.preflight import check_items
from vat.probes.base import fingerprint
from vat.run import build_items, setup

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict:
    check_launch(cfg)  # a multi-device run started so that ranks would re-run a sweep: refuse now
    walltime_signal_guard("before")  # SLURM: a walltime signal before fit requeues the job
    out = setup(cfg)
    prompting = is_prompting(cfg.method)
    strategy = build_strategy(cfg) if not prompting else None  # fails early
    items = build_items(cfg)
    target = V.normalize_value(cfg.value.name)
    data_check = check_items(items, target)
    if prompting:
        return train_prompting(cfg, items, out)

    spec = as_spec(cfg.model)
    tokenizer = load_tokenizer(spec)
    is_dpo = is_preference(cfg.method)
    accumulate = accumulation_steps(
        cfg.batch.global_size, cfg.batch.micro_size, world_size(cfg.trainer)
    )
    dataset, collate, loader = training_data(cfg, items, target, tokenizer)

    module = instantiate(cfg.method.module)
    summary: dict = {"data": data_check, "method": cfg.method.name, "target": target,
                     "train_data": train_data_kind(cfg.method), "register": items.register().to_dict()}  # fmt: skip
    if getattr(dataset, "swapped", None) and any(dataset.swapped):
        summary["placebo_swapped"] = int(sum(dataset.swapped))
    if getattr(dataset, "anchor_examples", None):
        summary["anchor"] = {"pairs": len(dataset.anchor_examples),
                             "weight": float(module.anchor_weight),
                             "values": sorted({V.BASIC_VALUES[e["value"]] for e in dataset.anchor_examples})}  # fmt: skip
    if is_dpo:
        ref = reference_logps(
            cfg, dataset, collate, average=module.average_logps, share_prompt=module.share_prompt
        )
        gap = value_gap(ref[: len(dataset)])  # the target's pairs (anchors follow them)
        summary["value_gap"] = gap
        (out / "value_gap.json").write_text(json.dumps(gap, indent=2))
        if module.reference == "precomputed":
            module.set_reference_logps(ref)

    held = items.heldout()
    # Objects go in after instantiation: Hydra would turn a dataclass argument into a config.
    probes = {name: instantiate(p, _convert_="all") for name, p in cfg.probes.items()}
    vat_cb = instantiate(cfg.callbacks.vat, _partial_=True, _convert_="all")(
        probes=probes,
        heldout=held,
        target=target,
        tokenizer=tokenizer,
        model_key=model_key(cfg.model),
        out_dir=out,
    )
    ckpt_dir = Path(cfg.callbacks.checkpoint.dirpath)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if getattr(rank_zero_only, "rank", 0) == 0:  # from the launcher's env: no process group yet
        recover_checkpoints(ckpt_dir)  # a write that a crash cut short: undone, never loaded
    OmegaConf.save(cfg, ckpt_dir / "config.yaml")  # the resolved config beside the checkpoints
    # in the config's order (the SIGTERM handler first: it is installed before the pre scoring)
    callbacks = [vat_cb if k == "vat" else instantiate(c) for k, c in cfg.callbacks.items() if c]
    # a logger that fails mid-run warns instead of stopping training (the curve is on disk anyway)
    loggers = (
        guard_all([instantiate(lg) for lg in cfg.logger.values() if lg])
        if cfg.get("logger")
        else False
    )
    # use_distributed_sampler=False: EpochShuffleSampler shards itself across ranks (Lightning's
    # wrapper would shuffle again on top, and the ranks would not share one process's batches).
    trainer: L.Trainer = instantiate(cfg.trainer, strategy=strategy, callbacks=callbacks,
                                     logger=loggers, accumulate_grad_batches=accumulate,
                                     use_distributed_sampler=False)  # fmt: skip
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # not DeepSpeed's own files
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
    for lg in trainer.loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        if is_dpo:
            lg.log_metrics({f"value_gap/{k}": v for k, v in summary["value_gap"].items()
                            if isinstance(v, int | float)}, step=0)  # fmt: skip
    walltime_signal_guard("fit")  # Lightning installs its requeue handler only over the default
    try:
        try:
            trainer.fit(
                module, train_dataloaders=loader, ckpt_path=cfg.ckpt_path, weights_only=True
            )
        except SIGTERMException:
            return interrupted(trainer, out, summary)
        walltime_signal_guard("after")  # SLURM: training is done; a late walltime signal is ignored
        policy = trained_policy(trainer, module)  # every rank takes part (ZeRO-3 gathers)
        if trainer.is_global_zero:
            summary["export"] = export_hf(policy, tokenizer, out)
            summary["final"] = final_report(out, vat_cb, summary, cfg)
            (out / "summary.json").write_text(
                json.dumps(to_jsonable(summary), indent=2, allow_nan=False)
            )
        trainer.strategy.barrier("vat_train_end")  # no rank leaves while rank zero still writes
    finally:
        _finish_wandb()  # the next cell of a multirun must start its own W&B run
        _close_process_group()
    return summary


def _close_process_group() -> None:
    """Tear down the process group Lightning created for this run (a local call, no collective).

    Left to interpreter exit, a gloo group's threads can be destroyed out of order: a rank that
    finished first aborted with "terminate called without an active exception" (seen once in the
    2-process ZeRO-3 test). A later run in the same process (a sweep cell) creates its own group.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def train_data_kind(method_cfg) -> str:
    """``method.train_data``: the real data (``target``) or a placebo kind (`vat.data.placebo`)."""
    return str(method_cfg.get("train_data") or "target")


def training_data(cfg: DictConfig, items, target: str, tokenizer):
    """(dataset, collator, loader) that `train` fits on: the SFT or preference set of the target
    value (or its placebo, ``method.train_data``), tokenised with ``cfg.prompt``, in the resumable,
    epoch-shuffled loader. A placebo's draw is seeded by the run's ``seed``."""
    prompt = TrainPrompt(**cfg.prompt)
    is_dpo = is_preference(cfg.method)
    extra = {"anchor_per_pair": int(cfg.method.get("anchor_per_pair") or 0)} if is_dpo else {}
    dataset = (PreferenceDataset if is_dpo else SFTDataset)(
        items, target, tokenizer, prompt, train_data=train_data_kind(cfg.method),
        placebo_seed=int(cfg.seed), **extra,
    )  # fmt: skip
    collate = (PreferenceCollator if is_dpo else SFTCollator)(pad_token_id=tokenizer.pad_token_id)
    return dataset, collate, training_loader(cfg, dataset, collate)


def training_loader(cfg: DictConfig, dataset, collate) -> ResumableDataLoader:
    """The resumable loader over `dataset`: micro-batches in an order fixed by (seed, epoch)."""
    return ResumableDataLoader(
        dataset, batch_size=cfg.batch.micro_size, sampler=EpochShuffleSampler(len(dataset), cfg.seed),
        collate_fn=collate, num_workers=cfg.batch.num_workers,
    )  # fmt: skip


def interrupted(trainer: L.Trainer, out: Path, summary: dict) -> dict:
    """After SIGTERM: the checkpoint `PreemptionCallback` saved, no export, a clean return."""
    from vat.callbacks import PreemptionCallback

    cb = next((c for c in trainer.callbacks if isinstance(c, PreemptionCallback)), None)
    saved = cb.saved if cb is not None else None
    summary["interrupted"] = {"signal": "SIGTERM", "step": trainer.global_step, "checkpoint": saved}
    if trainer.is_global_zero:
        (out / "summary.json").write_text(json.dumps(to_jsonable(summary), indent=2))
        log.warning("stopped by SIGTERM at step %d (checkpoint: %s); resume with ckpt_path=last "
                    "(a sweep: re-run the same command)", trainer.global_step, saved)  # fmt: skip
    return summary


def _finish_wandb() -> None:
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()


def train_prompting(cfg: DictConfig, items, out: Path) -> dict:
    """method=prompting: the base model under the value prompt, scored with every probe."""
    spec = as_spec(cfg.model)
    from vat.models import load

    model_tok = load(spec, with_lora=False)
    intervention = instantiate(cfg.method.intervention, _convert_="all")
    results = {}
    for name, probe_cfg in cfg.probes.items():
        probe = instantiate(probe_cfg, _convert_="all")
        results[name] = measure(
            cfg, items, probe, intervention, out / name, model_and_tokenizer=model_tok
        )
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return results


def build_strategy(cfg: DictConfig):
    """`cfg.strategy` as the Trainer takes it: a name (strategy=auto) or a Strategy object.

    Lightning's DeepSpeedStrategy runs on CUDA GPUs only but says so only once `fit` starts, after
    the data, tokenizer and reference log-probs: check it here, before anything loads. (A subclass
    that replaces that check, such as the tests' CPU variant, is trusted.)
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy

    if "_target_" not in cfg.strategy:
        return cfg.strategy.name
    strategy = instantiate(cfg.strategy, _convert_="all")  # DeepSpeed wants its config as a dict
    cuda_only = type(strategy).setup_environment is DeepSpeedStrategy.setup_environment
    accelerator = str(cfg.trainer.accelerator)
    if cuda_only and accelerator not in ("auto", "gpu", "cuda"):
        problem = f"trainer.accelerator={accelerator}"
    elif cuda_only and not torch.cuda.is_available():
        problem = "no CUDA GPU is visible"
    else:
        return strategy
    raise RuntimeError(
        f"strategy {cfg.strategy._target_} (DeepSpeed) needs CUDA GPUs, but {problem}: "
        "use strategy=ddp or strategy=auto without GPUs"
    )


def world_size(trainer_cfg) -> int:
    """Processes in the job: devices per node x nodes (devices as a count or a list of ids)."""
    devices = trainer_cfg.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    if not isinstance(devices, int) and not OmegaConf.is_list(devices):
        raise ValueError(
            f"trainer.devices={devices!r}: give a number or a list of device ids, so that the "
            "gradient accumulation can be derived from batch.global_size"
        )
    return (devices if isinstance(devices, int) else len(devices)) * int(trainer_cfg.num_nodes)


def accumulation_steps(global_size: int, micro_size: int, world_size: int) -> int:
    """Gradient accumulation so that micro x world x accumulation = global batch (in examples)."""
    per_step = micro_size * world_size
    if micro_size < 1 or global_size < 1 or global_size % per_step:
        raise ValueError(
            f"batch.global_size={global_size} must be a positive multiple of batch.micro_size "
            f"({micro_size}) x world size ({world_size}) = {per_step}"
        )
    return global_size // per_step


@torch.no_grad()
def reference_logps(
    cfg: DictConfig, dataset, collate, average: bool, share_prompt: bool = True
) -> torch.Tensor:
    """(N, 2) reference log-probs (chosen, rejected) of every training pair, by dataset index
    (tax-aware DPO: the anchor pairs too, after the target's).

    The base model (no adapters) is the reference. Computed once and cached on disk, keyed by
    model, training pairs and prompt template, so later runs and sweep cells reuse it.
    """
    scored = getattr(dataset, "scored_examples", dataset.examples)  # target pairs, then anchors
    pairs = [(ex["chosen_input_ids"], ex["rejected_input_ids"]) for ex in scored]
    key = fingerprint(model_key(cfg.model), pairs, average)
    target = cache_dir() / "reference" / key
    with build_once(target) as tmp:  # atomic, once per key even with several processes
        if tmp is None:
            log.info("reference log-probs from cache: %s", target)
        else:
            model = load_model(as_spec(cfg.model), with_lora=False)
            ref = compute_reference_logps(
                model, scored, collate, cfg.batch.micro_size, average, share_prompt
            )
            torch.save(ref, tmp / "ref.pt")
    return torch.load(target / "ref.pt", weights_only=True)


@torch.no_grad()
def compute_reference_logps(
    model, dataset, collate, batch_size: int, average: bool, share_prompt: bool = True
) -> torch.Tensor:
    """(N, 2) float64 (chosen, rejected) log-probs of every pair under `model`, uncached, by the
    same forward as the training step (`vat.forward.pair_logps`)."""
    ref = torch.zeros(len(dataset), 2, dtype=torch.float64)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for batch in loader:
        logps, n = pair_logps(model, batch, share_prompt=share_prompt)
        if average:
            logps = logps / n.clamp(min=1)
        b = len(batch["index"])
        ref[batch["index"], 0] = logps[:b].double()
        ref[batch["index"], 1] = logps[b:].double()
    return ref


def value_gap(ref: torch.Tensor) -> dict:
    """Do chosen and rejected actually differ under the reference? ("Value Drifts", Bhatia 2025).

    DPO moves a value only through pairs whose log-prob margin it can still change. We report the
    reference margin log p(chosen) - log p(rejected) over the training pairs and warn when the pairs
    are already separated (little left to learn) or indistinguishable.
    """
    m = (ref[:, 0] - ref[:, 1]).numpy()
    share = float((m > 0).mean())
    gap = {
        "n_pairs": len(m),
        "margin_mean": float(m.mean()),
        "margin_std": float(m.std()),
        "margin_p10": float(np.percentile(m, 10)),
        "margin_p90": float(np.percentile(m, 90)),
        "share_chosen_preferred": share,
        "warning": None,
    }
    if share > 0.9:
        gap["warning"] = (f"{share:.0%} of training pairs are already preferred the right way by the "
                          "reference: DPO has little left to learn on them")  # fmt: skip
    elif float(np.abs(m).max()) < 1e-3:
        gap["warning"] = "chosen and rejected are indistinguishable under the reference"
    log.info("value-gap check: %s", json.dumps(gap))
    if gap["warning"]:
        log.warning("value-gap check: %s", gap["warning"])
    return gap


def trained_policy(trainer: L.Trainer, module):
    """The trained HF model, whole and unsharded, on global rank 0 (None on the other ranks).

    Under ZeRO-3 each rank holds a shard of every weight: all ranks must call this, DeepSpeed gathers
    the full state dict onto rank 0 one layer at a time, and rank 0 loads it into a fresh copy of the
    policy built outside ZeRO-3. Otherwise the module's own model is already whole.
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy

    strategy = trainer.strategy
    if not (isinstance(strategy, DeepSpeedStrategy) and strategy.zero_stage_3):
        return module.model if trainer.is_global_zero else None
    state = strategy.deepspeed_engine._zero3_consolidated_16bit_state_dict()  # collective
    module.hf_zero3 = None  # transformers' ZeRO-3 switch off: the copy below is a plain model
    if not trainer.is_global_zero:
        return None
    from vat.modules.common import build_policy

    policy = build_policy(module.model_cfg)
    prefix = "model."  # the policy's keys in the LightningModule's state dict
    policy.load_state_dict(
        {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    )
    return policy


def export_hf(model, tokenizer, out: Path) -> dict:
    """The final model in Hugging Face format: the adapter (LoRA) and the merged model."""
    paths = {}
    if hasattr(model, "peft_config"):
        model.save_pretrained(out / "hf_adapter")
        tokenizer.save_pretrained(out / "hf_adapter")
        paths["adapter"] = str(out / "hf_adapter")
        merged = model.merge_and_unload()
    else:
        merged = model
    merged.save_pretrained(out / "hf_model")
    tokenizer.save_pretrained(out / "hf_model")
    paths["model"] = str(out / "hf_model")
    return paths


def checkpoint_stability(out: Path, probe: str, rows: list[dict], pre, target: str):
    """The stability profile over the checkpoints (steps > 0) of one probe's curve, with its noise
    reference from the saved per-step item scores; None with fewer than two checkpoints."""
    from vat.callbacks.vat import state_dir
    from vat.metrics import stability
    from vat.probes.base import ProbeResult

    pts = [r for r in rows if r["step"] > 0 and state_dir(out, r["step"], probe).is_dir()]
    if len(pts) < 2:
        return None
    scenes, names, S0 = pre.state("value")
    t = names.index(target)
    shifts = [ProbeResult.load(state_dir(out, r["step"], probe)).state("value", scenes)[2][:, t]
              - S0[:, t] for r in pts]  # fmt: skip
    num = lambda x: float("nan") if x is None else float(x)  # noqa: E731
    return stability([r["step"] for r in pts], [num(r["gain"]) for r in pts],
                     [num(r.get("gnd_l1_bc")) for r in pts],
                     [num(r.get("nvat_offdiag_excess")) for r in pts],
                     gain_ci=[(num(r["gain_lo"]), num(r["gain_hi"])) for r in pts],
                     target_shifts=shifts)  # fmt: skip


def final_report(out: Path, cb, summary: dict, cfg: DictConfig) -> dict:
    """Per probe: the measurement report at the last step, plus the curve figure over steps."""
    from vat.callbacks.vat import read_curve
    from vat.evaluate import robustness_payload
    from vat.probes.base import validity
    from vat.probes.checks import probe_agreement, probe_checks
    from vat.report import make_figures, plot_curve, write_report
    from vat.report.checks import checks_lines, robustness_lines
    from vat.report.headline import interpretation

    rows, _ = read_curve(cb.curve_path)
    final = {}
    checks = {n: probe_checks(cb.pre[n], cb.last_post[n]) for n in cb.last if n in cb.last_post}
    pair = [n for n in ("judgment", "likelihood") if n in checks]
    agreement = (probe_agreement(*((cb.pre[n], cb.last_post[n]) for n in pair))
                 if len(pair) == 2 else None)  # fmt: skip
    summary["probe_checks"] = {"per_probe": checks, "agreement": agreement}
    check_md = checks_lines(checks, agreement)
    lines = [f"# VAT run: {cfg.method.name} toward {V.BASIC[summary['target']].label}", "",
             f"Model `{cfg.model.name}`, {summary['data']['n_train_pairs_target']} training pairs, "
             f"{summary['data']['n_heldout_scenes']} held-out scenes.", ""]  # fmt: skip
    if "value_gap" in summary:
        g = summary["value_gap"]
        lines += ["## Value-gap check (before training)", "",
                  f"Reference margin log p(chosen) - log p(rejected): mean {g['margin_mean']:.3f} "
                  f"(sd {g['margin_std']:.3f}); chosen already preferred in "
                  f"{g['share_chosen_preferred']:.0%} of {g['n_pairs']} pairs.",
                  f"**Warning:** {g['warning']}." if g["warning"] else "No warning.", ""]  # fmt: skip
    for name, (step, res) in cb.last.items():
        d = out / f"report_{name}"
        figs = make_figures(res, d)
        (d / "vat.json").write_text(json.dumps({"step": step, "probe": name, **res.to_dict()},
                                               indent=2, allow_nan=False))  # fmt: skip
        figs["curve"] = plot_curve(
            [r for r in rows if r["probe"] == name], d / "curve.png", probe=name
        )
        valid = validity(cb.pre[name])
        stab = checkpoint_stability(out, name, [r for r in rows if r["probe"] == name],
                                    cb.pre[name], summary["target"])  # fmt: skip
        if stab is not None:
            summary.setdefault("stability", {})[name] = to_jsonable(asdict(stab))
        rob = (robustness_payload(cb.pre[name], cb.last_post[name], summary["target"], res,
                                  cfg.metrics) if name in cb.last_post else None)  # fmt: skip
        if rob is not None:
            summary.setdefault("robustness", {})[name] = rob["agreement"]
            (d / "robustness.json").write_text(json.dumps(rob, indent=2, allow_nan=False))
        extra = (checks_lines({name: checks[name]}) if name in checks else []) + robustness_lines(
            rob
        )
        write_report(d, result=res, validity=valid, model=cfg.model.name,
                     probe=name, intervention=f"{cfg.method.name} (step {step})", figures=figs,
                     post_checks=extra, stability=stab, stability_axis="training step")  # fmt: skip
        final[name] = {"step": step, "gain": res.gain, "gain_ci": res.intervals["gain"],
                       "p_gain": res.p_gain, "gnd_l1": res.gnd_l1, "gnd_l1_bc": res.gnd_l1_bc,
                       "gnd_ci": res.intervals["gnd_l1"], "p_drift": res.p_drift,
                       "nvat_offdiag": res.nvat_offdiag,
                       "nvat_offdiag_excess": res.nvat_offdiag_excess,
                       "nvat_ci": res.intervals["nvat_offdiag"], "p_nvat": res.p_nvat,
                       "gain_too_small": res.gain_too_small}  # fmt: skip
        near = list(valid.value[valid.near_chance])
        seen = (f"Probe validity: near chance for {len(near)} of 10 values ({', '.join(near)}); "
                "their numbers measure noise." if near else "Probe validity: every value is seen.")  # fmt: skip
        lines += [f"## Probe `{name}` at step {step}", "", seen, "", interpretation(res), "",
                  f"![VAT curve]({d.name}/curve.png)", "", f"Full report: [{d.name}/report.md]({d.name}/report.md)", ""]  # fmt: skip
    lines += check_md
    (out / "report.md").write_text("\n".join(lines))
    return final
