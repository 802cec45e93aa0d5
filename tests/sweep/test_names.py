"""`vat.sweep.names`: the cells a multirun plans (the sweeper's product, their names), every
experiment preset with its grid, and the W&B group of a sweep."""

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from tests.sweep.helpers import PRESETS, compose_multirun
from vat.sweep.names import planned_cells


def test_planned_cells_follow_the_sweepers_product_and_names():
    cfg = compose_multirun(["model=tiny"], ["value=benevolence,security", "method=sft,dpo"])
    cells = planned_cells(cfg)
    assert [c["name"] for c in cells] == [
        "method=sft,model=tiny,value=benevolence",
        "method=dpo,model=tiny,value=benevolence",
        "method=sft,model=tiny,value=security",
        "method=dpo,model=tiny,value=security",
    ]
    assert cells[0]["overrides"] == ["model=tiny", "value=benevolence", "method=sft"]


@pytest.mark.parametrize("preset", PRESETS)
def test_every_experiment_preset_composes_with_its_grid(preset):
    cfg = compose_multirun([f"experiment={preset}"])
    assert cfg.sweep.name == preset
    cells = planned_cells(cfg)
    assert cells and all("experiment" not in c["name"] for c in cells)
    # every cell composes (Hydra would also check this before launching)
    for c in cells:
        cell_cfg = compose_multirun(c["overrides"])
        OmegaConf.to_container(cell_cfg.trainer, resolve=True)
    values = {c["overrides"][0] for c in cells}
    if preset in ("all_values", "paper_prompting", "paper_sft_dpo"):
        assert len(values) == 10
    if preset == "paper_prompting":
        assert list(cfg.method.intervention.shots) == [0, 2, 4, 8] and len(cells) == 10
    if preset == "paper_sft_dpo":
        assert len(cells) == 20
        assert cfg.trainer.max_steps == 3 * cfg.callbacks.vat.every_n_steps  # three checkpoints
        assert list(cfg.probes.judgment.orders) == [
            "forward",
            "reverse",
        ]  # the order gap is checked
    if preset == "smoke":
        assert cfg.model.name == "tiny" and len(cells) == 4
    if preset == "controls":  # a real method and its placebo, 3 seeds each: 6 distinct cells
        assert len({c["name"] for c in cells}) == 6
        assert {c["name"] for c in cells} >= {"method=dpo,seed=0", "method=dpo_placebo,seed=2"}
    if preset == "tax_aware":  # plain, two lambdas, placebo; 3 seeds each; likelihood probe only
        assert len({c["name"] for c in cells}) == 12 and list(cfg.probes) == ["likelihood"]
        arms = {}
        for c in cells:
            cell = compose_multirun(c["overrides"])
            arms[c["overrides"][0]] = (cell.method.name, cell.method.get("anchor_per_pair"),
                                       cell.method.module.get("anchor_weight"))  # fmt: skip
        assert arms == {"arm=dpo": ("dpo", 0, None),
                        "arm=anchored_l1": ("dpo_anchored", 1, 1),
                        "arm=anchored_l10": ("dpo_anchored", 1, 10),
                        "arm=dpo_placebo": ("dpo_placebo", 0, None)}  # fmt: skip


def test_a_seed_axis_makes_one_cell_per_seed():
    cfg = compose_multirun(["model=tiny"], ["seed=0,1,2"])
    assert [c["name"] for c in planned_cells(cfg)] == [
        "model=tiny,seed=0", "model=tiny,seed=1", "model=tiny,seed=2",
    ]  # fmt: skip


def test_wandb_group_is_the_sweep_in_a_multirun_and_none_otherwise(tmp_path):
    import vat.config  # noqa: F401  (the resolver)

    for mode, expected in (("RUN", None), ("MULTIRUN", "train-mysweep")):
        cfg = compose_multirun(["sweep.name=mysweep"])
        OmegaConf.set_readonly(cfg.hydra, False)
        with open_dict(cfg):
            cfg.hydra.mode = mode
            cfg.hydra.runtime.output_dir = str(tmp_path)
            cfg.hydra.job.name = "train"
        HydraConfig.instance().set_config(cfg)
        assert cfg.logger.wandb.group == expected
        assert cfg.logger.wandb.job_type == "dpo"


def test_a_path_in_an_override_stays_one_path_component():
    from vat.sweep.names import MAX_NAME, cell_name

    short = cell_name("data.source=/data/items.jsonl,value=power")
    assert short == "data.source=%data%items.jsonl,value=power"
    long = cell_name("data.source=/" + "x/" * 120 + "items.jsonl,value=power")
    assert "/" not in long and len(long.encode()) <= MAX_NAME
