"""What the data tests share: item rows written as data files (the loaders', readers' and
selectors' tests) and a training example read back as prompt and response (the datasets' and
collators' tests)."""

from __future__ import annotations

import csv
import json

from tests import schwartz as V
from vat.losses import IGNORE_INDEX

TARGET = "benevolence"  # the value the training datasets are built toward


def row(scene="s1", micro="helpful", pol="express", **kw):
    r = {
        "id": f"{scene}-{micro}-{pol}",
        "scene_id": scene,
        "country": "Canada",
        "domain": "Health and Health Care",
        "scenario": f"Scenario of {scene}.",
        "value": V.basic_value_of(micro),
        "micro_value": micro,
        "polarity": pol,
        "action": f"I act ({micro}, {pol}) in {scene}.",
    }
    r.update(kw)
    return {k: v for k, v in r.items() if v is not ...}


def valid_rows(n_scenes=4):
    return [
        row(f"s{i}", m, p)
        for i in range(n_scenes)
        for m in ("helpful", "daring")
        for p in ("express", "suppress")
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, rows):
    fields = list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path


def prompt_and_response(example: dict, prefix: str = "") -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of an example, read off its labels."""
    ids, labels = example[prefix + "input_ids"], example[prefix + "labels"]
    n = sum(y == IGNORE_INDEX for y in labels)
    return ids[:n], ids[n:]
