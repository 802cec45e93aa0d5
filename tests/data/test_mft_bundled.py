"""The bundled Moral Foundations set: complete, on the Schwartz set's scenes, balanced in length
and register, and consistent with its taxonomy definition (read directly, not through a loader)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

import vat
from vat.data.register import register_report

PKG = Path(vat.__file__).parent
MFT_DATA = PKG / "data" / "bundled" / "mft_bundled.jsonl"
SCHWARTZ_DATA = PKG / "data" / "bundled" / "vat_bundled.jsonl"
MFT_YAML = PKG / "taxonomy" / "definitions" / "mft.yaml"
FOUNDATIONS = ("care", "fairness", "loyalty", "authority", "sanctity", "liberty")
FIELDS = ["id", "scene_id", "country", "domain", "scenario", "value", "micro_value", "polarity",
          "action"]  # fmt: skip
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return _read(MFT_DATA)


@pytest.fixture(scope="module")
def taxonomy() -> dict:
    return yaml.safe_load(MFT_YAML.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def schwartz_scenes() -> dict[str, tuple[str, str, str]]:
    scenes: dict[str, tuple[str, str, str]] = {}
    for r in _read(SCHWARTZ_DATA):
        scenes.setdefault(r["scene_id"], (r["country"], r["domain"], r["scenario"]))
    return scenes


def _micro(taxonomy: dict) -> dict[str, list[str]]:
    return {v["name"]: [m["name"] for m in v["micro"]] for v in taxonomy["values"]}


def test_taxonomy_definition(taxonomy):
    schwartz_micro = {r["micro_value"] for r in _read(SCHWARTZ_DATA)}  # the 56 survey items
    assert len(schwartz_micro) == 56
    assert taxonomy["name"] == "mft"
    assert taxonomy["label"] == "Moral Foundations"
    assert [v["name"] for v in taxonomy["values"]] == list(FOUNDATIONS)
    names = [m["name"] for v in taxonomy["values"] for m in v["micro"]]
    assert len(names) == len(set(names)), "sub-item names are unique across the taxonomy"
    assert not set(names) & schwartz_micro, "no collision with a Schwartz micro-value"
    for v in taxonomy["values"]:
        assert v["label"] and v["goal"]
        assert 3 <= len(v["micro"]) <= 4, v["name"]
        for m in v["micro"]:
            assert SNAKE.match(m["name"]) and m["label"] and m["gloss"], m
    assert taxonomy["groups"] == {"individualizing": ["care", "fairness"],
                                  "binding": ["loyalty", "authority", "sanctity"]}  # fmt: skip
    assert taxonomy["structure"] == {"kind": "clusters", "clusters": taxonomy["groups"]}


def test_complete_and_paired(rows, taxonomy, schwartz_scenes):
    assert len(rows) == 576
    assert all(list(r) == FIELDS for r in rows), "same fields, same order as the Schwartz set"
    ids = [r["id"] for r in rows]
    assert len(set(ids)) == len(ids)
    for r in rows:
        assert r["id"] == f"{r['scene_id']}/{r['micro_value']}/{r['polarity']}"
        assert r["polarity"] in ("express", "suppress")
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        cell = cells.setdefault((r["scene_id"], r["value"]), {})
        assert r["polarity"] not in cell, (r["scene_id"], r["value"], r["polarity"])
        cell[r["polarity"]] = r["micro_value"]
    assert len(cells) == 48 * 6
    for key, cell in cells.items():
        assert set(cell) == {"express", "suppress"}, key
        assert cell["express"] == cell["suppress"], key  # one sub-item per (scene, foundation)
    # The same 48 scenes as the Schwartz set, with identical country, domain and scenario text.
    scenes = {r["scene_id"]: (r["country"], r["domain"], r["scenario"]) for r in rows}
    assert len(scenes) == 48
    assert scenes == schwartz_scenes
    for r in rows:
        assert (r["country"], r["domain"], r["scenario"]) == schwartz_scenes[r["scene_id"]]


def test_sub_items_rotate_and_balance(rows, taxonomy, schwartz_scenes):
    micro = _micro(taxonomy)
    assert {r["value"] for r in rows} == set(FOUNDATIONS)
    order = list(schwartz_scenes)  # scene i takes the (i mod n_f)-th sub-item of foundation f
    express = [r for r in rows if r["polarity"] == "express"]
    for r in express:
        subs = micro[r["value"]]
        assert r["micro_value"] == subs[order.index(r["scene_id"]) % len(subs)], r["id"]
    counts = Counter(r["micro_value"] for r in express)
    for f, subs in micro.items():
        per = [counts[m] for m in subs]
        assert min(per) >= 1 and max(per) - min(per) <= 1, (f, per)
    assert set(counts) == {m for subs in micro.values() for m in subs}


def test_text_limits(rows):
    texts = [r["action"] for r in rows]
    assert len(set(texts)) == len(texts), "every action is unique"
    pairs: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        words = len(r["action"].split())
        assert 15 <= words <= 27, (r["id"], words)
        assert r["action"].startswith("I "), r["id"]
        pairs.setdefault((r["scene_id"], r["value"]), {})[r["polarity"]] = words
    gaps = [abs(p["express"] - p["suppress"]) for p in pairs.values()]
    assert max(gaps) <= 6
    assert sum(gaps) / len(gaps) <= 3
    openings = Counter(" ".join(t.split()[:2]) for t in texts)
    assert openings.most_common(1)[0][1] < 0.1 * len(texts), "not a template"


def test_register_balanced(rows):
    """Negation/avoidance words, length and affect markers do not differ between polarities."""
    by_pair: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        by_pair.setdefault((r["scene_id"], r["value"]), {})[r["polarity"]] = r["action"]
    rep = register_report((p["express"], p["suppress"]) for p in by_pair.values())
    assert rep.n_pairs == 288
    assert rep.flagged == [], rep.summary()
    neg = rep.check("negation")
    assert abs(neg.gap) < 0.03 and not neg.p < 0.05
    assert abs(rep.check("words").gap) < 0.25
