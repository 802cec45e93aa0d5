"""Pre vs post: the VAT metrics of a post state against the base model's, and the run directory.

`measure` scores the base model (pre, cached) and each post state (a checkpoint, or the base model
under a prompting intervention at each strength) on the held-out items with one probe, then writes
``states_pre/``, ``states_post[_k<strength>]/``, ``states.npz``, ``vat.json``, ``report.md`` and the
figures. `metrics_for` is the comparison the training callback runs at every checkpoint.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from vat.data import ItemSet
from vat.measure.cache import journal_path, model_key, post_model_id, score_cached
from vat.metrics import VATResult, compute_vat, stability, to_jsonable
from vat.models import as_spec, load
from vat.models.loading import load_model
from vat.probes import distributed as D
from vat.probes import scoring
from vat.probes.base import ProbeResult, validity
from vat.probes.checks import probe_checks
from vat.results import write_measurement as write_vat_json

log = logging.getLogger(__name__)


def metrics_for(
    pre: ProbeResult, post: ProbeResult, target: str, metrics: DictConfig | dict
) -> VATResult:
    """`compute_vat` on the pre and post states (rows paired by scene); `metrics` are its kwargs."""
    scenes, names, S_pre = pre.state("value")
    _, _, S_post = post.state("value", scenes)
    return compute_vat(S_pre, S_post, target, pre.taxonomy, names, **compute_kwargs(metrics))


def cross_for(pre: ProbeResult, post: ProbeResult, pre_x: ProbeResult, post_x: ProbeResult,
              metrics: DictConfig | dict):  # fmt: skip
    """The shift of another taxonomy's values (held-out items on the same scenes) beside this
    comparison, with its scene-level coupling to the run's values (`vat.metrics.cross`)."""
    from vat.metrics.cross import cross_shift, paired_shifts

    _, own, D_own, other, D_x = paired_shifts(pre, post, pre_x, post_x)
    m = dict(metrics)
    return cross_shift(D_own, own, D_x, other, taxonomy=pre_x.taxonomy.name, ci=m["ci"],
                       n_bootstrap=m["n_bootstrap"], min_overlap=m["min_overlap"],
                       coupling_method=m["coupling_method"], seed=m["seed"])  # fmt: skip


def compute_kwargs(metrics: DictConfig | dict) -> dict:
    """The metrics config as `compute_vat` takes it (``level`` selects extra analyses instead)."""
    kw = dict(metrics)
    kw.pop("level", None)
    return kw


def robustness_payload(pre: ProbeResult, post: ProbeResult, target: str, basic: VATResult,
                       metrics: DictConfig | dict) -> dict | None:  # fmt: skip
    """With ``metrics.level=both``: the micro-level and Kendall variants and their agreement with
    the basic-level result (`vat.metrics.robustness`); None otherwise."""
    if dict(metrics).get("level", "value") != "both":
        return None
    from vat.metrics.robustness import robustness_checks

    r = robustness_checks(pre, post, target, basic, compute_kwargs(metrics), pre.taxonomy)
    return {"agreement": to_jsonable(r["agreement"]), "micro": r["micro"].to_dict(),
            "kendall": r["kendall"].to_dict()}  # fmt: skip


def load_post_model(path: str, spec):
    """A full checkpoint directory, or a PEFT adapter directory on top of the base model."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"post_model={path}: no such directory")
    if (p / "adapter_config.json").exists():
        from peft import PeftModel

        return PeftModel.from_pretrained(load_model(spec, with_lora=False), p).eval()
    return load_model(spec, str(p), with_lora=False)


def measure(cfg: DictConfig, items: ItemSet, probe, intervention, out: Path,
            post_model: str | None = None, model_and_tokenizer=None) -> dict:  # fmt: skip
    """Pre vs post on the held-out items with one probe; writes states, vat.json, report, figures.

    In a distributed job every rank scores its share of the items, rank zero alone computes the
    metrics and writes the files, and every rank returns rank zero's payload.
    """
    target = items.taxonomy.normalize_value(cfg.value.name)
    held = items.heldout()
    if post_model is None and not intervention.strengths():
        raise ValueError(
            "nothing to compare with the base model: set post_model=<checkpoint or adapter dir> "
            "or intervention=prompting"
        )
    zero = D.is_rank_zero()
    spec = as_spec(cfg.model)
    model, tok = model_and_tokenizer or load(spec, with_lora=False)
    model = model.to(D.local_device())
    if zero:
        out.mkdir(parents=True, exist_ok=True)

    base_id, journals = model_key(cfg.model), []
    with scoring.journal(journal_path(base_id, probe)) as jr:
        journals.append(jr)
        pre = score_cached(probe, model, tok, held, None, base_id, use_cache=cfg.cache_pre)
        posts: list[tuple[float | None, ProbeResult]] = []
        if post_model is None:
            for k in intervention.strengths():
                ctx = intervention.context(items, target, k)
                posts.append((k, probe.score(model, tok, held, ctx)))
    if post_model is not None:
        post_net = load_post_model(post_model, spec).to(D.local_device())
        with scoring.journal(journal_path(post_model_id(post_model), probe)) as jr:
            journals.append(jr)
            posts.append((None, probe.score(post_net, tok, held)))
    payload = None
    if zero:
        try:
            payload = write_measurement(cfg, out, probe, intervention, post_model, spec, held,
                                        target, pre, posts)  # fmt: skip
        except OSError as e:  # e.g. a full disk: the scores stay journaled for the re-run
            kept = ", ".join(str(j.path) for j in journals if j is not None)
            raise OSError(e.errno, f"could not write the results to {out} ({e.strerror or e}); "
                          f"every item score is kept in {kept}: free space and run the same "
                          "command again, it reuses them") from e  # fmt: skip
    for jr in journals:  # every score is in the run dir now
        if zero and jr is not None:
            jr.path.unlink(missing_ok=True)
    return D.broadcast(payload)


def write_measurement(cfg, out: Path, probe, intervention, post_model, spec, held: ItemSet,
                      target: str, pre: ProbeResult, posts: list) -> dict:  # fmt: skip
    """Metrics of each post state against the pre state, and every file of the run directory."""
    pre.save(out / "states_pre")
    valid = validity(pre)
    scenes, names, S_pre = pre.state("value")
    arrays = {"scenes": np.array(scenes), "values": np.array(names), "pre": S_pre}
    results = []
    for k, post in posts:
        tag = "post" if k is None else f"post_k{k}"
        post.save(out / f"states_{tag}")
        arrays[tag] = post.state("value", scenes)[2]
        results.append({"strength": k, "result": metrics_for(pre, post, target, cfg.metrics)})
    np.savez(out / "states.npz", **arrays)

    stab = None
    if len(results) > 1:
        rs = [r["result"] for r in results]
        # The headline numbers: bias-corrected GND, debiased nVAT (the report labels them so).
        t = names.index(target)
        shifts = [arrays["post" if r["strength"] is None else f"post_k{r['strength']}"][:, t]
                  - S_pre[:, t] for r in results]  # fmt: skip
        stab = stability([r["strength"] for r in results], [r.gain for r in rs],
                         [r.gnd_l1_bc for r in rs], [r.nvat_offdiag_excess for r in rs],
                         gain_ci=[r.intervals["gain"] for r in rs], target_shifts=shifts)  # fmt: skip
    payload = {
        "target": target,
        "taxonomy": pre.taxonomy.ref(),
        "model": spec.name,
        "probe": probe.name,
        "probe_config": probe.config(),
        "intervention": intervention.name if post_model is None else f"checkpoint:{post_model}",
        "n_heldout_items": len(held),
        "n_heldout_scenes": len(held.scenes()),
        "validity": json.loads(valid.to_json(orient="records")),
        "pre_meta": pre.meta,
        "results": [{"strength": r["strength"], **r["result"].to_dict()} for r in results],
        "stability": None if stab is None else to_jsonable(asdict(stab)),
        "probe_checks": to_jsonable(probe_checks(pre, posts[-1][1])),
        "robustness": robustness_payload(
            pre, posts[-1][1], target, results[-1]["result"], cfg.metrics
        ),
    }
    write_vat_json(out, payload)
    write_outputs(out, payload, results, valid, stab)
    return payload


def write_outputs(out: Path, payload: dict, results: list[dict], valid, stab) -> None:
    """Figures, report.md and the console summary for the last (strongest) post state."""
    from vat.report import gain_tax_point, make_figures, summary_table, write_report

    last, k = results[-1]["result"], results[-1]["strength"]
    points = [gain_tax_point(r["result"], r["strength"] or 0) for r in results]
    figures = make_figures(last, out, points=points)
    from vat.report.checks import checks_lines, robustness_lines

    write_report(
        out, result=last, validity=valid, model=payload["model"], probe=payload["probe"],
        intervention=payload["intervention"] + ("" if k is None else f" (k={k})"),
        figures=figures, stability=stab,
        post_checks=checks_lines({payload["probe"]: payload["probe_checks"]})
        + robustness_lines(payload.get("robustness")),
    )  # fmt: skip
    table = summary_table(last, valid)
    log.info("VAT summary\n%s\n\nwrote %s/vat.json, report.md and figures", table, out)
    from vat.report.console import results_table

    point = "checkpoint" if k is None else f"k={k}"
    print(results_table({payload["probe"]: (point, last, valid)}, out / "report.md"))


def measure_probes(cfg: DictConfig, items: ItemSet, intervention_cfg, out: Path) -> dict:
    """Every probe of ``cfg.probes`` on the base model under one intervention (``method=prompting``:
    nothing is trained), each into ``out/<probe>``; the model is loaded once."""
    spec = as_spec(cfg.model)
    model_tok = load(spec, with_lora=False)
    intervention = instantiate(intervention_cfg, _convert_="all")
    results = {}
    for name, probe_cfg in cfg.probes.items():
        probe = instantiate(probe_cfg, _convert_="all")
        results[name] = measure(
            cfg, items, probe, intervention, out / name, model_and_tokenizer=model_tok
        )
    (out / "summary.json").write_text(json.dumps(results, indent=2))
    return results
