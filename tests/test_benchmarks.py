"""Each benchmark script runs end to end in its --smoke mode (the peer is skipped when TRL or lm-eval
is missing, as in this venv), and the numbers of the tables it prints hold together: every rate is
positive, finite and inside its min-max, every ratio is the ratio of the medians, and every derived
column is what its definition gives from the others (to the printed precision)."""

import ast
import math
import re
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NUM = r"[0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?"  # as `common.table` prints it: 58.3, 1.19e+04, 657


def _smoke(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, f"benchmarks/{script}", "--smoke", "--no-write"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table printed: its rows, each ``{column: cell}``."""

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().removeprefix("|").removesuffix("|").split("|")]

    lines, out = [*text.splitlines(), ""], []

    def starts_table(i: int) -> bool:
        return lines[i].startswith("| ") and lines[i + 1].startswith("|---|")

    for i in range(len(lines) - 1):
        if starts_table(i):
            header, rows, j = cells(lines[i]), [], i + 2
            while lines[j].startswith("| ") and not starts_table(j):  # up to a gap or a new table
                rows.append(dict(zip(header, cells(lines[j]), strict=True)))
                j += 1
            out.append(rows)
    assert out, f"no table printed:\n{text[-3000:]}"
    return out


def number(cell: str) -> float:
    """The number a cell starts with: "58.3", "0.17x", "75.8%", "71.36 items/s", "-36.3"."""
    m = re.match(rf"-?{NUM}", cell)
    assert m, f"not a number: {cell!r}"
    return float(m.group())


def positive(cell: str) -> float:
    x = number(cell)
    assert math.isfinite(x) and x > 0, cell
    return x


def close(got: float, want: float, rel: float = 0.0, abs_: float = 0.0) -> bool:
    return abs(got - want) <= rel * abs(want) + abs_


def literal(text: str, prefix: str):
    """The Python literal printed after `prefix` on its line (the benchmarks' detail dicts)."""
    line = next(x for x in text.splitlines() if x.startswith(prefix))
    return ast.literal_eval(line.removeprefix(prefix))


def rate(row: dict, column: str) -> float:
    """The median rate of a row: positive, finite and inside its min-max (both printed to 3
    significant figures, so within 1% of each other at the ends)."""
    med = positive(row[column])
    lo, hi = (float(x) for x in re.fullmatch(rf"({NUM})-({NUM})", row["min-max"]).groups())
    assert 0 < lo <= hi and 0.99 * lo <= med <= 1.01 * hi, row
    return med


def check_ratio(cell: str, ours: float, peer: float) -> None:
    """A ratio cell ("1.23x") is ours / peer of the unrounded medians (printed to 3 significant
    figures each)."""
    assert re.fullmatch(rf"{NUM}x", cell), cell
    assert close(number(cell), ours / peer, rel=0.011, abs_=0.006), (cell, ours, peer)


@pytest.mark.slow
def test_bench_dpo_smoke():
    out = _smoke("bench_dpo.py")
    (rows,) = tables(out)  # one model in the smoke run
    by = {r["contender"]: r for r in rows}
    assert {"ours precomputed", "ours adapter_disabled", "ours frozen_copy"} <= set(by)
    peer = "TRL online" in by
    assert peer == (find_spec("trl") is not None)
    for name, r in by.items():
        med = rate(r, "pairs/s (median)")
        positive(r["peak RSS MiB"])
        if name.startswith("ours precomputed"):
            positive(r["precompute s"])  # the one-off reference pass
        for column, of in (("ratio vs TRL online", "TRL online"),
                           ("ratio vs TRL precompute", "TRL precompute")):  # fmt: skip
            if peer:
                check_ratio(r[column], med, number(by[of]["pairs/s (median)"]))
            else:
                assert r[column] == "peer missing"
    agree = literal(out, "Agreement: ")
    assert agree["ln2"] == round(math.log(2), 6)
    # step 0: the policy is the reference, so every contender's DPO loss is ln 2
    assert set(agree["step0_loss"]) == set(by)
    assert all(v == pytest.approx(math.log(2), abs=1e-6) for v in agree["step0_loss"].values())
    # our variants run the same pairs, init and optimizer: the same losses step by step
    ours = [v for n, v in agree["first_losses"].items() if n.startswith("ours")]
    assert len(ours) >= 3 and all(v == pytest.approx(ours[0], abs=1e-3) for v in ours)


@pytest.mark.slow
def test_bench_callback_smoke():
    out = _smoke("bench_callback.py")
    (rows,) = tables(out)
    by = {r["run"]: r for r in rows}
    ours, off = by["ours: with VAT callback"], by["peer: hooks off"]
    steps = int(re.search(r", (\d+) steps x \d+ reps", out).group(1))
    for r in rows:
        steps_per_s = rate(r, "steps/s (median)")
        positive(r["peak RSS MiB"])
        # the rate is the run's steps over its fit seconds (printed to 0.1 s)
        assert close(number(r["fit s (median)"]), steps / steps_per_s, rel=0.01, abs_=0.051), r
        assert 0 <= number(r["share of fit"]) <= 100 and 0 <= number(r["share of train()"]) <= 100
    assert number(off["VAT hooks s"]) == 0 and number(off["share of fit"]) == 0  # no callback
    assert off["ratio vs hooks off"] == "1.00x (peer)"
    check_ratio(ours["ratio vs hooks off"], number(ours["steps/s (median)"]),
                number(off["steps/s (median)"]))  # fmt: skip
    detail = literal(out, "Detail: ")
    assert detail["share_of_fit"] == pytest.approx(number(ours["share of fit"]) / 100, abs=6e-4)
    fit_gap = number(ours["fit s (median)"]) - number(off["fit s (median)"])
    assert detail["fit_with_minus_without_s"] == pytest.approx(fit_gap, abs=0.11)
    assert detail["token_budget"]["eval_over_train_forward_equivalents"] > 0


@pytest.mark.slow
def test_bench_train_scaling_smoke():
    out = _smoke("bench_train_scaling.py")
    rows = next(t for t in tables(out) if "L (tokens per sequence)" in t[0])
    batch = int(re.search(r"batch (\d+) pairs", out).group(1))
    peer = any(r["run"] == "TRL" for r in rows)
    assert peer == (find_spec("trl") is not None)
    step_s: dict[str, list[float]] = {}
    for r in rows:
        length, pairs_per_s = int(r["L (tokens per sequence)"]), rate(r, "pairs/s (median)")
        # tokens/s counts both sequences of a pair: 2 L per pair
        assert close(positive(r["tokens/s (2L/pair)"]), 2 * length * pairs_per_s, 0.006, 0.5), r
        # a step trains one batch: s/step = batch / (pairs/s)
        s = positive(r["s/step"])
        assert close(s, batch / pairs_per_s, rel=0.006, abs_=5e-4), r
        step_s.setdefault(r["run"], []).append(s)
        if r["run"] == "TRL":
            assert r["ratio ours/TRL"] == "1.00x (peer)"
        elif peer:
            trl = next(x for x in rows if x["run"] == "TRL" and x["L (tokens per sequence)"]
                       == r["L (tokens per sequence)"])  # fmt: skip
            check_ratio(r["ratio ours/TRL"], pairs_per_s, number(trl["pairs/s (median)"]))
        else:
            assert r["ratio ours/TRL"] == "peer missing"
    lengths = [int(r["L (tokens per sequence)"]) for r in rows if r["run"] == "ours"]
    assert lengths == [64, 128]
    m = re.search(r"Scaling exponent k \(step time ~ L\^k\): (\{.*?\}); step seconds per token "
                  r"\(s/step / 2L\): (\{.*\})", out)  # fmt: skip
    k, per_token = ast.literal_eval(m.group(1)), ast.literal_eval(m.group(2))
    assert set(k) == set(per_token) == set(step_s)
    for run, pt in per_token.items():
        # s/step is printed to 3 decimals (+-5e-4 s), the per-token figure from the unrounded time
        for got, s, n in zip(pt, step_s[run], lengths, strict=True):
            assert got == pytest.approx(s / (2 * n), abs=5e-4 / (2 * n) + 5e-7), (run, n)
        # the slope of log(step time) on log(L), through the two lengths
        slope = math.log(pt[1] * lengths[1] / (pt[0] * lengths[0])) / math.log(2)
        assert k[run] == pytest.approx(slope, abs=0.01)


@pytest.mark.slow
def test_bench_probe_smoke():
    out = _smoke("bench_probe.py")
    titles = re.findall(r"\*\*(.+?)\*\*: (\d+) items, \d+ reps", out)
    assert titles == [("tiny, scene context", "20"), ("tiny, probe prompt", "20"),
                      ("tiny, chat template", "20")]  # fmt: skip
    *likelihood, judgment = tables(out)
    lm_eval = find_spec("lm_eval") is not None
    for rows, diff, has_peer in ((likelihood[0], "max rel diff", lm_eval),
                                 (likelihood[1], "max rel diff", lm_eval),
                                 (judgment, "max abs diff", True)):  # fmt: skip
        names = [r["contender"] for r in rows]
        assert "ours, batch 16 (probe default)" in names
        peer = rows[0] if has_peer else None  # the peer comes first
        for r in rows:
            items_per_s = rate(r, "items/s (median)")
            positive(r["peak RSS MiB"])
            positive(r["GFLOP/item"])
            if peer is None:
                assert r["ours/peer"] == "n/a (peer missing)" and r["FLOP ratio"] == "-"
            elif r is peer:
                assert r["ours/peer"] == "1.00x (peer)" and r[diff] == "-"
            else:
                check_ratio(r["ours/peer"], items_per_s, number(peer["items/s (median)"]))
                assert positive(r["FLOP ratio"]) > 1  # ours runs each shared prefix once
                assert number(r[diff]) < 1e-3  # and scores as the peer does
    assert judgment[0]["contender"].startswith("naive loop")
    ours = judgment[1:]
    best = max(ours, key=lambda r: number(r["ours/peer"]))
    m = re.search(rf"- tiny, judgment: best ours/peer ({NUM})x .* at a FLOP ratio of ({NUM})x", out)
    assert f"{m.group(1)}x" == best["ours/peer"] and f"{m.group(2)}x" == best["FLOP ratio"]


@pytest.mark.slow
def test_bench_mfu_smoke():
    out = _smoke("bench_mfu.py")
    peaks = {k: float(v) for k, v in re.findall(rf"matmul peak (fp32|bf16): ({NUM}) GFLOP/s", out)}
    assert set(peaks) == {"fp32", "bf16"} and all(v > 0 for v in peaks.values())
    rows = next(t for t in tables(out) if "MFU (useful)" in t[0])
    names = [r["run"] for r in rows]
    assert {"training, full FT (6N), fp32", "training, LoRA r=16 (4N), fp32"} <= set(names)
    assert sum(n.startswith("scoring (likelihood probe)") for n in names) == 2
    for r in rows:
        unit = " items/s" if r["run"].startswith("scoring") else " tok/s"
        assert r["throughput"].endswith(unit) and positive(r["throughput"]), r
        positive(r["peak RSS MiB"])
        useful = positive(r["useful GFLOP/s"])
        peak = peaks["bf16" if "bf16" in r["run"] else "fp32"]
        mfu = []
        for column in ("MFU (useful)", "MFU (incl. padding)"):
            if r[column] == "n/a (above the measured peak)":
                assert column != "MFU (useful)" or useful >= 0.99 * peak, r
                continue
            assert re.fullmatch(r"[0-9]+%", r[column]), r
            mfu.append(number(r[column]))
        if r["MFU (useful)"].endswith("%"):
            # MFU = useful GFLOP/s over the measured peak (each printed to 0.1 GFLOP/s, MFU to 1%)
            slack = 0.5 + 100 * (0.05 / peak + 0.05 * useful / peak**2)
            assert close(mfu[0], 100 * useful / peak, abs_=slack), (r, peak)
        if len(mfu) == 2:
            assert mfu[0] <= mfu[1]  # padding adds positions run, not useful work


@pytest.mark.slow
def test_bench_eval_scaling_smoke():
    out = _smoke("bench_eval_scaling.py")
    (rows,) = tables(out)
    assert [r["size"] for r in rows] == ["0.5x", "1x", "2x"]
    n = np.array([int(r["items"]) for r in rows], dtype=float)
    assert n.tolist() == [20, 40, 80]  # 2 base scenes in the smoke run, 20 items a scene
    m = re.search(rf"b = (-?{NUM}) ms/item, a = (-?{NUM}) s, R\^2 = (-?{NUM}) \(on all (\d+) runs: "
                  rf"b = (-?{NUM}) ms/item, R\^2 = (-?{NUM})\)", out)  # fmt: skip
    b, a, r2, runs, b_all, r2_all = (float(x) for x in m.groups())
    t = np.array([positive(r["seconds (median)"]) for r in rows])
    for r, items, seconds in zip(rows, n, t, strict=True):
        lo, hi = (float(x) for x in r["min-max"].split("-"))
        assert lo <= seconds <= hi
        slack = 1e3 * 0.005 / items + 0.05  # seconds printed to 0.01 s, ms/item to 0.1
        assert close(number(r["ms/item"]), 1e3 * seconds / items, abs_=slack), r
        # the fitted line's time per item: 1000 (a + b n) / n, from the printed a and b
        assert close(number(r["ms/item (fit)"]), 1e3 * a / items + b, abs_=slack + 0.01), r
        positive(r["peak RSS MiB"])
    # the line through the printed medians (rounding moves its slope by < 0.2 ms/item)
    slope, intercept = np.polyfit(n, t, 1)
    assert 1e3 * slope == pytest.approx(b, abs=0.25) and intercept == pytest.approx(a, abs=0.02)
    assert math.isfinite(r2) and r2 <= 1
    if runs == len(rows):  # one repetition each: every run is a median
        assert (b_all, r2_all) == (b, r2)
    rss = [number(r["peak RSS MiB"]) for r in rows]
    m = re.search(rf"Peak RSS from ({NUM}) to ({NUM}) MiB over a ({NUM})x range of items", out)
    assert [float(x) for x in m.groups()] == [min(rss), max(rss), n.max() / n.min()]
