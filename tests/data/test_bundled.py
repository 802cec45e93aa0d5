"""The bundled dataset: complete, balanced, and within the design's limits."""

import json
from collections import Counter

from tests import schwartz as V
from tests.schwartz import SCHWARTZ
from vat.data import BUNDLED, bundled_path, load_items

COUNTRIES = {"United States", "India", "Pakistan", "Nigeria", "Philippines", "United Kingdom",
             "Germany", "Uganda", "Canada", "Egypt", "France", "Australia"}  # fmt: skip
DOMAINS = {"Politics", "Social Networks", "Social Inequality", "Family & Changing Gender Roles",
           "Work Orientation", "Religion", "Environment", "National Identity", "Citizenship",
           "Leisure Time and Sports", "Health and Health Care"}  # fmt: skip


def test_bundled_is_complete_and_balanced():
    items = load_items(BUNDLED, SCHWARTZ)
    assert items.report.n_dropped == 0
    scenes = items.scenes()
    assert len(scenes) >= 36
    assert len(items) == 20 * len(scenes) >= 720
    # Every scene: one express and one suppress action for each of the 10 values.
    per_scene = Counter((it.scene_id, it.value, it.polarity) for it in items)
    assert set(per_scene.values()) == {1}
    assert len(per_scene) == len(scenes) * 10 * 2
    # All 56 micro-values appear, and no micro-value dominates its value.
    micro = Counter(it.micro_value for it in items if it.polarity == "express")
    assert set(micro) == set(V.MICRO_VALUES)
    for v in V.BASIC_VALUES:
        counts = [micro[m] for m in V.micro_values_of(v)]
        assert max(counts) - min(counts) <= 1, (v, counts)
    # Countries and domains drawn from the paper's, with wide coverage and balance.
    countries = Counter(
        it.country for it in items if it.polarity == "express" and it.value == "power"
    )
    domains = Counter(it.domain for it in items if it.polarity == "express" and it.value == "power")
    assert set(countries) <= COUNTRIES and len(countries) >= 8
    assert set(domains) <= DOMAINS and len(domains) >= 8
    assert max(countries.values()) - min(countries.values()) <= 1
    assert max(domains.values()) - min(domains.values()) <= 2


def test_bundled_text_limits():
    rows = [
        json.loads(line) for line in bundled_path(SCHWARTZ).read_text(encoding="utf-8").splitlines()
    ]
    texts = [r["action"] for r in rows]
    assert len(set(texts)) == len(texts), "every action is unique"
    for r in rows:
        words = len(r["action"].split())
        assert words <= 40 and r["action"].startswith("I "), r["id"]
        sentences = sum(r["scenario"].count(p) for p in (". ", "? ", "! ")) + 1
        assert 1 <= sentences <= 3, r["scene_id"]
    by_pair = {}
    for r in rows:
        by_pair.setdefault((r["scene_id"], r["micro_value"]), {})[r["polarity"]] = len(
            r["action"].split()
        )
    gaps = [abs(p["express"] - p["suppress"]) for p in by_pair.values()]
    assert max(gaps) <= 6
    assert sum(gaps) / len(gaps) <= 3  # the two actions of a pair have similar length
    # Not a template: openings vary.
    openings = Counter(" ".join(t.split()[:2]) for t in texts)
    assert openings.most_common(1)[0][1] < 0.1 * len(texts)
