"""`vat.probes.distributed`: distributed scoring on 2 CPU processes (gloo) equals single-process
scoring; and its helpers on their own (the work assignment, `local_only`, the device, the process
group from the environment, gather and broadcast).

- the scoring engine under a 2-process group: both probes, gathered scores equal to one process,
  the same number of forward passes on every rank (ZeRO-3 needs it) with uneven shares, the pre
  state cache written by rank zero and read by all;
- ``evaluate.py`` under torchrun: the same vat.json as one process;
- `VATCallback` under Lightning DDP: one curve row per step and probe, the same gains.
"""

import contextlib
import json
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.overrides import FAST
from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, ItemSet, load_items
from vat.models import ModelSpec, load
from vat.probes import JudgmentProbe, LikelihoodProbe
from vat.probes import distributed as D

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-5


def _items() -> ItemSet:
    """3 held-out scenes minus one item: 59 items, shares that cannot be equal on 2 ranks."""
    held = load_items(BUNDLED, SCHWARTZ).heldout()
    scenes = held.scenes()[:3]
    return held.subset(tuple(it for it in held if it.scene_id in scenes)[1:])


def _probes() -> dict:
    return {
        "likelihood": LikelihoodProbe(progress=False),  # a unit per scene (prefix reuse)
        "likelihood_loose": LikelihoodProbe(progress=False, reuse_prefix=False, batch_size=7),
        "judgment": JudgmentProbe(progress=False),  # both scale orders: two scoring passes
    }


def _score_all(model, tok, items) -> dict:
    """Per probe: (items frame, units frame, meta, forward passes run by this process)."""
    calls = [0]
    hook = model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    out = {}
    try:
        for name, probe in _probes().items():
            before = calls[0]
            res = probe.score(model, tok, items)
            out[name] = (res.items, res.units, res.meta, calls[0] - before)
        from vat.measure import score_cached

        # the pre-state cache: computed sharded and written once, then read by every rank
        for i in range(2):
            before = calls[0]
            res = score_cached(_probes()["likelihood"], model, tok, items, None, {"name": "t"})
            out[f"cached{i}"] = (res.items, res.units, res.meta, calls[0] - before)
    finally:
        hook.remove()
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, tiny_dir: str, out_dir: str) -> None:
    os.environ["VAT_CACHE"] = str(Path(out_dir) / "cache")
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    try:
        model, tok = load(ModelSpec(name="tiny", pretrained=tiny_dir), with_lora=False)
        result = _score_all(model, tok, _items())
        (Path(out_dir) / f"rank{rank}.pkl").write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()


def _max_diff(a: pd.DataFrame, b: pd.DataFrame) -> float:
    assert list(a.columns) == list(b.columns)
    num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    other = [c for c in a.columns if c not in num]
    pd.testing.assert_frame_equal(
        a[other], b[other]
    )  # ids, scenes, polarity: same rows, same order
    return float(np.max(np.abs(a[num].to_numpy() - b[num].to_numpy()))) if num else 0.0


@pytest.mark.slow
def test_sharded_scores_equal_single_process(tiny_dir, tmp_path, monkeypatch):
    port = _free_port()
    t0 = time.perf_counter()
    mp.spawn(_worker, args=(2, port, str(tiny_dir), str(tmp_path)), nprocs=2, join=True)
    print(f"2-process scoring: {time.perf_counter() - t0:.1f} s")
    ranks = [pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) for r in (0, 1)]

    monkeypatch.setenv("VAT_CACHE", str(tmp_path / "cache_single"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers: on a busy 2-core machine more threads crawl
    try:
        model, tok = load(ModelSpec(name="tiny", pretrained=str(tiny_dir)), with_lora=False)
        single = _score_all(model, tok, _items())
    finally:
        torch.set_num_threads(threads)

    worst = 0.0
    for name in (*_probes(), "cached0", "cached1"):
        s_items, s_units, s_meta, s_calls = single[name]
        for r in ranks:
            items, units, meta, _ = r[name]
            worst = max(worst, _max_diff(items, s_items), _max_diff(units, s_units))
            assert meta.keys() == s_meta.keys()
            np.testing.assert_allclose(list(meta.values()), list(s_meta.values()), atol=TOL)
        calls = [r[name][3] for r in ranks]
        assert calls[0] == calls[1], f"{name}: forward passes per rank {calls}"
        if name != "cached1":  # the work was split: each rank ran fewer forwards than one process
            assert 0 < calls[0] < s_calls, (name, calls, s_calls)
    print(f"max |sharded - single| over item and unit scores: {worst:.2e}")
    assert worst < TOL
    # 3 scenes of 20, 20, 19 items, each one packed batch: a rank with 2 scenes runs 3 forwards
    # (both scenario prefixes in one, then a batch per scene), the other 2 + 1 dummy one
    assert ranks[0]["likelihood"][3] == 3
    # the cache: one entry, written by rank zero in the first call, read by both in the second
    assert len([p for p in (tmp_path / "cache" / "states").iterdir() if p.is_dir()]) == 1
    assert ranks[0]["cached0"][3] > 0 and [r["cached1"][3] for r in ranks] == [0, 0]


def test_assign_is_balanced_and_deterministic():
    owner = D.assign([5, 3, 3, 2, 2, 1], 2)
    loads = [
        sum(c for c, o in zip([5, 3, 3, 2, 2, 1], owner, strict=True) if o == r) for r in (0, 1)
    ]
    assert owner == D.assign([5, 3, 3, 2, 2, 1], 2) and sorted(loads) == [8, 8]
    assert D.assign([1, 1, 1], 1) == [0, 0, 0]
    # no process group: the helpers are no-ops
    assert D.rank_world() == (0, 1) and D.gather(3) == [3] and D.broadcast("x") == "x"
    assert not D.sharding()


def test_assign_by_hand():
    # costliest first (ties by index), each to the least-loaded rank (ties to the lower rank):
    # 5 -> r0 (loads 5, 0); 3 -> r1 (5, 3); 3 -> r1 (5, 6); 2 -> r0 (7, 6); 2 -> r1 (7, 8); 1 -> r0
    assert D.assign([5, 3, 3, 2, 2, 1], 2) == [0, 1, 1, 0, 1, 0]
    # unit 2 (9) -> r0; unit 0 (4) -> r1; unit 1 (4) -> r1 (4 < 9); unit 3 (1) -> r1 (8 < 9)
    assert D.assign([4, 4, 9, 1], 2) == [1, 1, 0, 1]
    assert D.assign([2, 2, 2, 2], 3) == [0, 1, 2, 0]  # equal costs go round the ranks
    assert D.assign([1.0], 4) == [0] and D.assign([], 2) == []  # more ranks than units


def test_sharding_needs_several_ranks_and_stops_inside_local_only(monkeypatch):
    monkeypatch.setattr(D, "rank_world", lambda: (1, 2))
    assert D.sharding() and not D.is_rank_zero()
    with D.local_only():
        assert not D.sharding()
        with D.local_only():
            assert not D.sharding()
        assert not D.sharding()  # the outer block still holds
    assert D.sharding()
    with pytest.raises(RuntimeError), D.local_only():
        raise RuntimeError("scoring failed")
    assert D.sharding()  # restored after an error too
    monkeypatch.setattr(D, "rank_world", lambda: (0, 1))
    assert not D.sharding() and D.is_rank_zero()


def test_the_local_device_is_the_local_ranks_gpu_or_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert D.local_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert D.local_device() == torch.device("cuda", 3)
    monkeypatch.delenv("LOCAL_RANK")
    assert D.local_device() == torch.device("cuda", 0)


def test_process_group_from_env_leaves_a_single_process_and_an_existing_group_alone(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with D.process_group_from_env():
        assert not dist.is_initialized()
    # a group already there (one process over gloo) is used, not replaced, and not torn down
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")
        with D.process_group_from_env():
            assert D.rank_world() == (0, 1) and not D.sharding()
            assert D.gather({"a": 1}) == [{"a": 1}] and D.broadcast("x") == "x"
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def _collectives_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    torch.set_num_threads(1)
    with D.process_group_from_env():
        seen = {"rank_world": D.rank_world(), "zero": D.is_rank_zero(), "sharding": D.sharding(),
                "gather": D.gather({"rank": rank}), "broadcast": D.broadcast(f"rank {rank}", src=1)}  # fmt: skip
        with D.local_only():
            seen["local_only_sharding"] = D.sharding()
    seen["group_after"] = dist.is_initialized()
    (Path(out_dir) / f"rank{rank}.pkl").write_bytes(pickle.dumps(seen))


@pytest.mark.slow
def test_collectives_across_two_processes(tmp_path):
    """Two processes launched as torchrun would (env:// variables): `process_group_from_env` joins
    them over gloo and tears its group down after; gather is in rank order on every rank,
    broadcast sends rank 1's object to both."""
    mp.spawn(_collectives_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        assert pickle.loads((tmp_path / f"rank{r}.pkl").read_bytes()) == {
            "rank_world": (r, 2), "zero": r == 0, "sharding": True,
            "gather": [{"rank": 0}, {"rank": 1}], "broadcast": "rank 1",
            "local_only_sharding": False, "group_after": False,
        }  # fmt: skip


EVAL = ["model=tiny", "metrics.n_bootstrap=200", "metrics.n_permutations=500",
        "probe.progress=false", "value=benevolence", "intervention.shots=[1]"]  # fmt: skip


def _close(a, b, path="") -> None:
    """Same JSON structure; numbers equal within a relative 1e-4: the states differ by float noise
    only (checked at 1e-5 below), which ratios such as GND (shift / gain) and bootstrap quantiles
    amplify (8.53254 vs 8.53244 seen when the two runs batch the scene prefixes differently)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == pytest.approx(b, abs=TOL, rel=10 * TOL), path
    else:
        assert a == b, path


def _cold_cache(tmp_path: Path, tiny_dir: Path) -> Path:
    """An empty cache dir that shares the built tiny model (so pre states are computed afresh)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(Path(tiny_dir).parent, target_is_directory=True)
    return cache


def _check(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-5000:]
    return time.perf_counter() - t0


@contextlib.contextmanager
def _one_thread():
    """The in-process reference run with one thread, as each rank (torchrun's OMP default)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        yield lambda: time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


ENV = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow
def test_evaluate_under_torchrun_equals_single_process(compose_cfg, tiny_dir, tmp_path):
    from vat.evaluate import evaluate

    cfg = compose_cfg("evaluate", [*EVAL, "cache_pre=false"])
    with _one_thread() as elapsed:
        evaluate(cfg)
        t1 = elapsed()
    single, multi = Path(cfg.paths.output_dir), tmp_path / "torchrun"
    cache = _cold_cache(tmp_path, tiny_dir)
    t2 = _check([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                 "evaluate.py", *EVAL, f"paths.cache_dir={cache}", f"hydra.run.dir={multi}"],
                {**os.environ, **ENV})  # fmt: skip
    print(f"evaluate: one process (in pytest) {t1:.1f} s, torchrun x2 {t2:.1f} s")
    a, b = (json.loads((d / "vat.json").read_text()) for d in (single, multi))
    _close(b, a)
    for states in ("states_pre", "states_post_k1"):
        diff = _max_diff(*(pd.read_parquet(d / states / "items.parquet") for d in (multi, single)))
        print(f"max |torchrun - single| over {states} item scores: {diff:.2e}")
        assert diff < TOL, (states, diff)
    assert (multi / "report.md").is_file()
    log = (multi / "evaluate.log").read_text()  # both ranks log here
    assert "rank 0 of 2" in log and "rank 1 of 2" in log
    # the pre state was computed by both ranks and cached once, by rank zero
    assert len([p for p in (cache / "states").iterdir() if p.is_dir()]) == 1


TRAIN = [
    *FAST, "method=dpo", "method.module.reference=precomputed",
    "trainer.max_steps=4", "callbacks.vat.every_n_steps=2", "trainer.accelerator=cpu",
    # every step sees all 34 training pairs (17 per micro-batch), so one process accumulating two
    # micro-batches and two processes with one each take the same optimizer steps
    "batch.micro_size=17", "batch.global_size=34",
]  # fmt: skip


def _curve(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "vat_curve.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_vat_callback_under_ddp_equals_single_process(compose_cfg, tiny_dir, tmp_path):
    from vat.train import train

    cfg = compose_cfg("train", TRAIN)
    with _one_thread() as elapsed:
        train(cfg)
        t1 = elapsed()
    single, ddp = Path(cfg.paths.output_dir), tmp_path / "ddp"
    cache = _cold_cache(tmp_path, tiny_dir)  # DDP computes the reference and pre state afresh
    t2 = _check([sys.executable, "train.py", *TRAIN, "strategy=ddp", "trainer.devices=2",
                 f"paths.cache_dir={cache}", f"hydra.run.dir={ddp}"], {**os.environ, **ENV})  # fmt: skip
    print(f"train: one process (in pytest) {t1:.1f} s, DDP x2 {t2:.1f} s")
    rows, ref = _curve(ddp), _curve(single)
    keys = [(r["step"], r["probe"]) for r in rows]
    assert keys == [(s, "likelihood") for s in (0, 2, 4)], "missing or duplicate curve rows"
    assert keys == [(r["step"], r["probe"]) for r in ref]
    worst = 0.0
    for a, b in zip(rows, ref, strict=True):
        assert a["gain"] == pytest.approx(b["gain"], abs=1e-4), a["step"]
        for v, s in b["shift"].items():
            assert a["shift"][v] == pytest.approx(s, abs=1e-4), (a["step"], v)
            worst = max(worst, abs(a["shift"][v] - s))
    print(f"max |DDP - single| over the curve's per-value shifts: {worst:.2e}")
    assert rows[-1]["gain"] != 0  # the policy moved, in both runs alike
    # both ranks scored a share at every evaluation (each rank logs to its own file)
    logs = "".join(p.read_text() for p in ddp.glob("*.log"))
    assert "rank 0 of 2" in logs and "rank 1 of 2" in logs
    assert (ddp / "states_pre_likelihood" / "items.parquet").is_file()
    assert (ddp / "summary.json").is_file()
