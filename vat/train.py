"""`train(cfg)`: what ``python train.py`` runs.

The method is all in the config (``conf/method/<name>.yaml``): its ``datamodule`` (the training
set), its ``module`` (the LightningModule, with its loss and, for DPO, its ``reference``), or, for a
method that trains nothing (``method=prompting``), its ``intervention``. This file is the glue:
config and data checks (seconds) -> tokenizer and training set -> reference log-probs and the
value-gap check (a module with a precomputed reference) -> Trainer.fit with the VAT callback
writing the curve -> HF export -> final report.
"""

from __future__ import annotations

import json
from pathlib import Path

from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig

from vat import reference as R
from vat.export import export_hf, trained_policy
from vat.launch.checks import check_launch
from vat.launch.slurm import walltime_signal_guard
from vat.measure import measure_probes, model_key
from vat.metrics import to_jsonable
from vat.models import as_spec, load_tokenizer
from vat.preflight import check_items
from vat.report.training import final_report
from vat.run import build_cross, build_items, setup
from vat.trainer import (
    build_callbacks,
    build_strategy,
    build_trainer,
    close_process_group,
    finish_wandb,
    interrupted,
)


def train(cfg: DictConfig) -> dict:
    check_launch(cfg)  # a multi-device run started so that ranks would re-run a sweep: refuse now
    walltime_signal_guard("before")  # SLURM: a walltime signal before fit requeues the job
    out = setup(cfg)
    if "module" not in cfg.method:  # nothing to train: measure the intervention (prompting)
        items = build_items(cfg)
        check_items(items, str(cfg.value.name))
        return measure_probes(cfg, items, cfg.method.intervention, out)
    strategy = build_strategy(cfg)  # fails early (DeepSpeed without CUDA)
    items = build_items(cfg)
    target = items.taxonomy.normalize_value(cfg.value.name)
    summary: dict = {"data": check_items(items, target), "method": cfg.method.name,
                     "target": target, "register": items.register().to_dict()}  # fmt: skip
    tokenizer = load_tokenizer(as_spec(cfg.model))
    data = instantiate(cfg.method.datamodule)(items=items, target=target, tokenizer=tokenizer)
    module = instantiate(cfg.method.module)
    summary.update(data.summary())
    if "anchor" in summary:
        summary["anchor"]["weight"] = float(module.anchor_weight)
    if isinstance(getattr(module, "reference", None), R.Reference):
        summary["value_gap"] = reference_check(cfg, data, module, out)

    # Objects go in after instantiation: Hydra would turn a dataclass argument into a config.
    probes = {name: instantiate(p, _convert_="all") for name, p in cfg.probes.items()}
    vat_cb = instantiate(cfg.callbacks.vat, _partial_=True, _convert_="all")(
        probes=probes, heldout=items.heldout(), target=target, tokenizer=tokenizer,
        model_key=model_key(cfg.model), out_dir=out, cross=build_cross(cfg, items),
    )  # fmt: skip
    trainer = build_trainer(cfg, strategy, build_callbacks(cfg, vat_cb))
    if "value_gap" in summary:  # no empty metrics row for methods without a reference
        for lg in trainer.loggers:
            lg.log_metrics({f"value_gap/{k}": v for k, v in summary["value_gap"].items()
                            if isinstance(v, int | float)}, step=0)  # fmt: skip
    table = None
    walltime_signal_guard("fit")  # Lightning installs its requeue handler only over the default
    try:
        try:
            trainer.fit(module, datamodule=data, ckpt_path=cfg.ckpt_path, weights_only=True)
        except SIGTERMException:
            return interrupted(trainer, out, summary)
        walltime_signal_guard("after")  # SLURM: training is done; a late walltime signal is ignored
        policy = trained_policy(trainer, module)  # every rank takes part (ZeRO-3 gathers)
        if trainer.is_global_zero:
            summary["export"] = export_hf(policy, tokenizer, out)
            summary["final"] = final_report(out, vat_cb, summary, cfg)
            table = end_of_run_table(vat_cb, out)
            (out / "summary.json").write_text(
                json.dumps(to_jsonable(summary), indent=2, allow_nan=False)
            )
        trainer.strategy.barrier("vat_train_end")  # no rank leaves while rank zero still writes
    finally:
        finish_wandb()  # the next cell of a multirun must start its own W&B run
        close_process_group()
    if table:
        print(table)  # last, after W&B's own summary: what the user reads when the run ends
    return summary


def end_of_run_table(cb, out: Path) -> str:
    """The results table the run ends with: the last point of every probe (`vat.report.console`)."""
    from vat.probes.base import validity
    from vat.report.console import results_table

    rows = {
        name: (f"step {step}", res, validity(cb.pre[name])) for name, (step, res) in cb.last.items()
    }
    return results_table(rows, out / "report.md")


def reference_check(cfg: DictConfig, data, module, out: Path) -> dict:
    """The base model's log-probs of every training pair (cached), the value-gap check on the
    target's pairs (anchors follow them), and the log-probs handed to a precomputed reference."""
    ref = R.precompute(cfg.model, data.dataset, data.collate, cfg.batch.micro_size,
                       average=module.average_logps, share_prompt=module.share_prompt)  # fmt: skip
    gap = R.value_gap(ref[: len(data.dataset)])
    (out / "value_gap.json").write_text(json.dumps(gap, indent=2))
    if module.reference.precomputed:
        module.set_reference_logps(ref)
    return gap
