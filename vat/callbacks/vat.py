"""`VATCallback`: the VAT curve while a model trains.

At the start of training it takes the pre state (the base model, step 0) from the cache or scores
it; then every `every_n_steps` optimizer steps (the checkpoint cadence) and at the end it scores the
held-out items with each configured probe, computes the metrics against the pre state and logs,
against the global step: gain with its interval and bootstrap-t p, GND (raw, bias-corrected, its
noise floor, interval and drift test), the unevenness test, nVAT (raw, its permutation null, the
debiased headline with its interval and p), circumplex consistency with its Mantel p, the shift per
value and the hubs. Every row is also appended to ``vat_curve.jsonl`` in the run directory, so the curve exists
without W&B. A step is never logged twice: on resume the curve is cut back to the restored step
and continues from there. The item-level scores of every point are saved under ``states/``
(`state_dir`), beside the pre state ``states_pre_<probe>/``.

Distributed (DDP, DeepSpeed): every rank takes part in every evaluation, scoring its share of the
held-out scenes (required under ZeRO-3, where each forward is collective), and gets all the scores;
rank zero alone computes the metrics, logs them and writes the curve and the state files.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from vat.data import ItemSet
from vat.io import CURVE_FILE, atomic_write, read_curve
from vat.measure import cross_for, metrics_for, score_cached
from vat.metrics import VATResult
from vat.metrics.fields import CURVE, flat_row, wandb_metrics
from vat.preflight import RULES
from vat.probes import distributed as D
from vat.probes.base import ProbeResult

log = logging.getLogger(__name__)


class VATCallback(L.Callback):
    def __init__(
        self,
        probes: dict[str, Any],
        heldout: ItemSet,
        target: str,
        tokenizer,
        model_key: dict,
        out_dir: str | Path,
        *,
        every_n_steps: int,
        metrics: dict,
        log_images: bool,
        cache_pre: bool,
        gather_zero3: bool,
        cross: dict[str, ItemSet] | None = None,
    ):
        # every setting comes from conf/callbacks/default.yaml (callbacks.vat): no second default
        if not probes:
            raise ValueError("callbacks.vat.probes is empty: configure at least one probe")
        # the key's one rule (vat.preflight.RULES), which the preflight runs before anything loads
        RULES["callbacks.vat.every_n_steps"].check("callbacks.vat.every_n_steps", every_n_steps)
        self.probes = dict(probes)
        self.heldout = heldout
        self.target = target
        self.tokenizer = tokenizer
        self.model_key = model_key
        self.out_dir = Path(out_dir)
        self.curve_path = self.out_dir / CURVE_FILE
        self.every_n_steps = every_n_steps
        self.metrics = dict(metrics)
        self.log_images = log_images
        self.cache_pre = cache_pre
        self.gather_zero3 = gather_zero3
        # held-out items of other taxonomies on the same scenes (measure=[...]): scored beside
        # the run's own at every point, reported as cross-taxonomy shifts (vat.metrics.cross)
        self.cross = dict(cross or {})
        self.pre: dict[str, ProbeResult] = {}
        self.pre_cross: dict[tuple[str, str], ProbeResult] = {}
        self.last_cross: dict[str, dict[str, Any]] = {}  # probe -> taxonomy -> CrossShift
        self.done: set[tuple[int, str]] = set()
        self.last: dict[str, tuple[int, VATResult]] = {}
        self.last_post: dict[str, ProbeResult] = {}  # the item scores behind `last` (rank zero)

    # ------------------------------------------------------------------ hooks
    def on_train_start(self, trainer, pl_module) -> None:
        step = trainer.global_step
        self._resume_curve(step)
        for name, probe in self.probes.items():
            with _base_model_view(pl_module, step) as base, self._gathered(trainer, base):
                self.pre[name] = score_cached(probe, base, self.tokenizer, self.heldout, None,
                                              self.model_key, use_cache=self.cache_pre)  # fmt: skip
                for tax, held in self.cross.items():
                    self.pre_cross[name, tax] = score_cached(
                        probe, base, self.tokenizer, held, None, self.model_key,
                        use_cache=self.cache_pre,
                    )  # fmt: skip
            if trainer.is_global_zero:
                self.pre[name].save(self.out_dir / f"states_pre_{name}")
                for tax in self.cross:
                    self.pre_cross[name, tax].save(self.out_dir / f"states_pre_{name}@{tax}")
        if step == 0:
            for name in self.probes:  # step 0: post = pre, the curve's origin
                pre_x = {tax: self.pre_cross[name, tax] for tax in self.cross}
                self._record(trainer, name, 0, self.pre[name], elapsed=0.0, posts_cross=pre_x)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step > 0 and step % self.every_n_steps == 0:
            self.evaluate(trainer, pl_module, step)

    def on_train_end(self, trainer, pl_module) -> None:
        self.evaluate(trainer, pl_module, trainer.global_step)

    # ------------------------------------------------------------------ work
    def evaluate(self, trainer, pl_module, step: int) -> None:
        for name, probe in self.probes.items():
            if (step, name) in self.done:
                continue
            t0 = time.perf_counter()
            was_training = pl_module.model.training
            pl_module.model.eval()
            try:
                with self._gathered(trainer, pl_module.model):
                    post = probe.score(pl_module.model, self.tokenizer, self.heldout)
                    post_x = {tax: probe.score(pl_module.model, self.tokenizer, held)
                              for tax, held in self.cross.items()}  # fmt: skip
            finally:
                pl_module.model.train(was_training)
            self._record(trainer, name, step, post, elapsed=time.perf_counter() - t0,
                         posts_cross=post_x)  # fmt: skip

    @contextlib.contextmanager
    def _gathered(self, trainer, model):
        """ZeRO-3: the whole model gathered on every rank for the scoring, once, and the engine's
        per-module fetch/release hooks taken off meanwhile, as TRL does for generation
        (`trl.models.utils.unwrap_model_for_generation`): otherwise every forward of the held-out
        set fetches and releases each module's weights again. Costs one full copy of the weights
        per rank while it scores: ``callbacks.vat.gather_zero3=false`` where that does not fit.
        Elsewhere a no-op. The hooks go back through DeepSpeed's own registration
        (`DeepSpeedZeRoOffload._register_deepspeed_module`, DeepSpeed >= 0.16.4, as TRL calls it)."""
        engine = getattr(trainer.strategy, "model", None)
        offload = getattr(getattr(engine, "optimizer", None), "parameter_offload", None)
        params = [p for p in model.parameters() if hasattr(p, "ds_id")]
        if not (self.gather_zero3 and offload is not None and params):
            yield
            return
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            for p in offload.module.parameters(recurse=True):
                p.ds_active_sub_modules.clear()
            for hook in (*offload.forward_hooks, *offload.backward_hooks):
                hook.remove()
            offload.forward_hooks, offload.backward_hooks = [], []
            try:
                yield
            finally:
                offload._register_deepspeed_module(offload.module)

    def _record(self, trainer, name: str, step: int, post: ProbeResult, elapsed: float,
                posts_cross: dict[str, ProbeResult] | None = None) -> None:  # fmt: skip
        self.done.add((step, name))
        if not trainer.is_global_zero:
            return
        res = metrics_for(self.pre[name], post, self.target, self.metrics)
        self.last[name] = (step, res)
        self.last_post[name] = post
        cross = {tax: cross_for(self.pre[name], post, self.pre_cross[name, tax], p, self.metrics)
                 for tax, p in (posts_cross or {}).items()}  # fmt: skip
        self.last_cross[name] = cross
        if step > 0:  # the item scores behind the row: controls, repeats and regressions read them
            post.save(state_dir(self.out_dir, step, name))
            for tax, p in (posts_cross or {}).items():
                p.save(state_dir(self.out_dir, step, f"{name}@{tax}"))
        row = curve_row(res, name, step, trainer.current_epoch, elapsed)
        if cross:
            row["cross"] = {tax: c.to_dict() for tax, c in cross.items()}
        self._append(row)
        self._log(trainer, row, res, name, step)

    @rank_zero_only
    def _append(self, row: dict) -> None:
        # One write of one line, flushed and synced: a crash leaves whole rows only.
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            with self.curve_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, allow_nan=False) + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:  # e.g. a full disk: say which file; the checkpoints are untouched
            raise OSError(e.errno, f"could not append step {row['step']} to the VAT curve "
                          f"{self.curve_path} ({e.strerror or e}); the last checkpoint is intact: "
                          "free space and resume with ckpt_path=last") from e  # fmt: skip

    def _log(self, trainer, row: dict, res: VATResult, name: str, step: int) -> None:
        flat = wandb_metrics(row, name)
        for logger in trainer.loggers:
            try:
                logger.log_metrics(flat, step=step)
            except Exception as e:  # a logging backend failing must not stop training
                log.warning("logger %s failed at step %d: %s", type(logger).__name__, step, e)
        if self.log_images:
            self._log_images(trainer, res, name, step)

    def _log_images(self, trainer, res: VATResult, name: str, step: int) -> None:
        wandb_loggers = [lg for lg in trainer.loggers
                         if type(lg).__name__ == "WandbLogger" and not _records_nothing(lg)]  # fmt: skip
        if not wandb_loggers:
            return
        from vat.report import plot_coupling, plot_shift_circumplex

        fig_dir = self.out_dir / "figures" / f"step{step:07d}"
        figs = {"coupling": plot_coupling(res, fig_dir / f"{name}_coupling.png")}
        tax = self.heldout.taxonomy
        if tax.structure_kind == "circle":  # a radar plot only where the taxonomy has a circle
            figs["shift_circumplex"] = plot_shift_circumplex(
                res, fig_dir / f"{name}_shift.png", tax
            )
        for lg in wandb_loggers:
            try:
                for fig, path in figs.items():  # one key per figure: W&B wants equal sizes per key
                    lg.log_image(key=f"vat/{name}/{fig}", images=[str(path)], step=step)
                lg.log_table(key=f"vat/{name}/shift_table", columns=["value", "shift", "tau"],
                             data=[[v, res.mean_shift[v], res.tau.get(v)] for v in res.values],
                             step=step)  # fmt: skip
            except Exception as e:
                log.warning("W&B image logging failed at step %d: %s", step, e)

    def _resume_curve(self, step: int) -> None:
        """Keep the rows up to the restored step (later ones will be recomputed) and mark them done.

        Rank zero reads the curve and every rank gets its done set: the ranks must agree on which
        steps to evaluate (each evaluation is collective), whatever files they can see.
        """
        done = None
        if D.is_rank_zero():
            done = set()
            if self.curve_path.exists():
                rows, torn = read_curve(self.curve_path)
                keep = [r for r in rows if r["step"] <= step]
                done = {(r["step"], r["probe"]) for r in keep}
                if len(keep) != len(rows) or torn:
                    atomic_write(self.curve_path, "".join(json.dumps(r) + "\n" for r in keep))
        self.done = D.broadcast(done)


def state_dir(out_dir: Path, step: int, probe: str) -> Path:
    """Where the post state (item-level scores) of one curve point is saved: ``states/`` in the
    run directory, one folder per (step, probe); step 0 is ``states_pre_<probe>``."""
    if step == 0:
        return Path(out_dir) / f"states_pre_{probe}"
    return Path(out_dir) / "states" / f"step{step:07d}_{probe}"


def _records_nothing(logger) -> bool:
    """A W&B logger in ``mode=disabled`` drops everything: drawing its figures (about a second
    each on a CPU) would be time taken from training for nothing."""
    return getattr(logger, "_wandb_init", {}).get("mode") == "disabled"


def curve_row(res: VATResult, probe: str, step: int, epoch: int, elapsed: float) -> dict:
    """One row of the VAT curve: where it was measured, then the curve's fields as
    `vat.metrics.fields` declares them (strict JSON: NaN becomes null, an infinite interval end
    "inf"). ``gnd_lo``/``gnd_hi`` bound the bias-corrected GND, ``nvat_lo``/``nvat_hi`` the
    debiased nVAT (``nvat_offdiag_excess``, the headline)."""
    where = {"step": int(step), "epoch": int(epoch), "probe": probe}
    return {**where, **flat_row(res.to_dict(), CURVE), "eval_seconds": round(float(elapsed), 3)}


@contextlib.contextmanager
def _base_model_view(pl_module, step: int):
    """The base (pre-training) model: the policy itself at step 0; after resuming, the policy
    with its adapters disabled, or a freshly loaded base model for full fine-tuning."""
    model = pl_module.model
    if step == 0:
        yield model
    elif hasattr(model, "disable_adapter"):
        with model.disable_adapter():
            yield model
    else:
        from vat.models import as_spec, load_model

        yield load_model(as_spec(pl_module.model_cfg), with_lora=False).to(pl_module.device)
