"""SIGKILL during `evaluate.py`: the re-run reuses the item scores already computed (the scoring
journal) and writes the same `vat.json` as an uninterrupted run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["model=tiny", "metrics.n_bootstrap=200", "metrics.n_permutations=500",
        "probe.progress=false", "intervention=prompting", "intervention.shots=[1]",
        "value=security"]  # fmt: skip


def run_evaluate(out: Path, cache: Path, fault: str = ""):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VAT_FAULT": fault, "VAT_CACHE": str(cache),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    cmd = [sys.executable, "-m", "tests.reliability.faults", "evaluate.py", *ARGS,
           f"hydra.run.dir={out}"]  # fmt: skip
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_killed_evaluation_resumes_from_item_scores_and_gives_the_same_result(tmp_path):
    ref = run_evaluate(tmp_path / "ref", tmp_path / "cache_ref")
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert not list((tmp_path / "cache_ref" / "journal").glob("*.jsonl"))  # removed when done

    cache = tmp_path / "cache"
    # pre and post state: 14 batches each (one packed batch per scene); killed after batch 20:
    # pre cached whole, post part-way
    killed = run_evaluate(tmp_path / "killed", cache, fault="kill_in_scoring:20")
    assert killed.returncode == -9, killed.stderr[-3000:]
    (jpath,) = (cache / "journal").glob("likelihood-*.jsonl")
    journaled = sum(len(json.loads(line)["h"]) for line in jpath.read_text().splitlines())
    assert journaled > 0
    assert not (tmp_path / "killed" / "vat.json").exists()

    again = run_evaluate(tmp_path / "killed", cache)
    assert again.returncode == 0, again.stderr[-3000:]
    log = again.stdout + again.stderr
    reused = [int(n) for n in re.findall(r"(\d+) item scores reused from", log)]
    got = json.loads((tmp_path / "killed" / "vat.json").read_text())
    want = json.loads((tmp_path / "ref" / "vat.json").read_text())
    n_pre = got["n_heldout_items"]  # the pre state finished: the re-run takes it from its cache
    assert 0 < journaled - n_pre < n_pre
    assert reused == [journaled - n_pre]  # every post score computed before the kill, reused
    assert not jpath.exists()
    assert got == want  # the very same numbers, not just close ones
    a = np.load(tmp_path / "killed" / "states.npz")
    b = np.load(tmp_path / "ref" / "states.npz")
    for k in b.files:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.slow
def test_full_disk_while_writing_results_keeps_every_score_for_the_rerun(
    compose_cfg, monkeypatch, tmp_path, caplog
):
    import errno
    import logging

    from vat import evaluate as E

    monkeypatch.setenv("VAT_CACHE", str(tmp_path / "cache"))
    real_savez = np.savez

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match=r"could not write the results to .*No space left on device"
                                      r".*every item score is kept in .*journal"):  # fmt: skip
        E.evaluate(compose_cfg("evaluate", ARGS))
    (jpath,) = (tmp_path / "cache" / "journal").glob("likelihood-*.jsonl")
    journaled = sum(len(json.loads(line)["h"]) for line in jpath.read_text().splitlines())

    monkeypatch.setattr(np, "savez", real_savez)  # space freed: the same command again
    with caplog.at_level(logging.INFO, logger="vat.probes.scoring"):
        out = E.evaluate(compose_cfg("evaluate", ARGS))
    reused = [int(n) for n in re.findall(r"(\d+) item scores reused from", caplog.text)]
    n = out["n_heldout_items"]
    assert journaled == 2 * n  # pre and post, every item
    assert reused == [n]  # the post state's items; the pre state comes from its own cache
    assert out["results"][0]["gain"] is not None and not jpath.exists()
