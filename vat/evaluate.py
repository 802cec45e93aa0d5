"""`evaluate(cfg)`: what ``python evaluate.py`` runs.

Score the base model (pre) and the post model on the held-out items with one probe, then compute
every VAT metric and write the run directory:

- ``states_pre/``, ``states_post[_k<strength>]/``: item-level scores (Parquet) and meta;
- ``states.npz``: the scene x value state matrices (pre and each post) with scene and value names;
- ``vat.json``: probe validity, every metric with its interval for each post state, the stability
  profile over the strength axis;
- ``report.md`` and PNG figures.

The post model is either a checkpoint (``post_model=<HF dir or LoRA adapter dir>``) or the base
model under a prompting intervention (``intervention=prompting intervention.shots=[2,4,8]``). The
pre state is cached on disk, keyed by model, held-out items, probe settings and prompt, so a second
evaluation of the same base model does not recompute it.

Under torchrun (``torchrun --nproc_per_node=N evaluate.py ... hydra.run.dir=<dir>``) the ranks
share the scoring (whole scenes per rank, gathered back in order: the same scores as one process);
rank zero computes the metrics and writes every file. Give every rank the same ``hydra.run.dir``.
"""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig

from vat.measure import measure
from vat.probes import distributed as D
from vat.run import build_items, setup


def evaluate(cfg: DictConfig) -> dict:
    """Under torchrun (``WORLD_SIZE > 1``) the ranks share the scoring; rank zero writes."""
    with D.process_group_from_env():
        out = setup(cfg)
        probe = instantiate(cfg.probe, _convert_="all")
        intervention = instantiate(cfg.intervention, _convert_="all")
        items = build_items(cfg)
        return measure(cfg, items, probe, intervention, out, post_model=cfg.post_model)
