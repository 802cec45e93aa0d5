"""Validation once (issue 23, item 4): every rule on a config key is written in one place.

- A choice is a `vat.settings.Choice` (enum) field of a schema: every one of them refuses a bad
  value when Hydra composes the config, naming the key and the options; no module spells the
  options out again (a membership test or a message listing them).
- A range is a `vat.settings.Rule` in exactly one table: `vat.preflight.RULES` (keys without a
  typed node of their own), the ``RULES`` of a settings dataclass (`MetricsSettings`, `LoraSpec`)
  or `vat.anchor`'s; no module states a range of one of those keys in a message of its own,
  except the few listed below with the reason.

The source scan reads the messages of ``raise`` statements and of ``problems.append(...)`` calls,
with each ``{...}`` of an f-string read as ``{}``.
"""

import ast
import re
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

import vat.config  # noqa: F401  (registers the schemas, defines their choices)
from vat import anchor, preflight
from vat.metrics.settings import MetricsSettings
from vat.models.loading import LoraSpec
from vat.settings import Choice, Settings

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "vat").rglob("*.py"))

# Where each schema with choice fields sits in a composed config.
NODES = {"ModelSpec": "model", "MetricsConfig": "metrics", "DataConfig": "data"}

# (file, key) -> why that file states the key's rule itself
EXEMPT = {
    ("vat/trainer.py", "batch.global_size"): "the divisibility of the global batch by micro batch "
    "x world size: a rule across keys, where the accumulation is derived",
    ("vat/data/datasets.py", "method.anchor_per_pair"): "the dataset's own argument check; to "
    "run vat.anchor.ANCHOR_PER_PAIR instead (not this change's file)",
    ("vat/metrics/coupling.py", "metrics.min_overlap"): "coupling()'s own argument (>= 0 for a "
    "direct caller); the config's >= 2 is MetricsSettings'",
}  # fmt: skip
# (file, choice) -> why that file spells the choice's options out
EXEMPT_CHOICES = {
    ("vat/probes/scoring/engine.py", "PaddingSide"): "the probes' own padding_side (probe.*, "
    "not model.*), a str in the probe schemas; to be typed PaddingSide (not this change's file)",
}  # fmt: skip


def _choices() -> list[type[Choice]]:
    def walk(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    return [c for c in walk(Choice) if len(c) >= 2]


def _choice_fields() -> list[tuple[str, str, type[Choice]]]:
    """(node, field, choice) of every choice field of a schema in Hydra's ConfigStore."""
    import dataclasses
    import typing

    from hydra.core.config_store import ConfigStore

    from vat.settings import _choice_of

    seen, out = set(), []
    repo = ConfigStore.instance().repo
    schemas = [n.node for group in repo.values() if isinstance(group, dict)
               for n in group.values() if hasattr(n, "node")]  # fmt: skip
    for node in schemas:
        cls = node._metadata.object_type
        if cls is None or cls in seen or not dataclasses.is_dataclass(cls):
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            choice = _choice_of(hints.get(f.name))
            if choice is not None:
                assert cls.__name__ in NODES, f"{cls.__name__}.{f.name}: add its node to NODES"
                out.append((NODES[cls.__name__], f.name, choice))
    return out


def test_the_choice_fields_are_found():
    found = {f"{node}.{name}" for node, name, _ in _choice_fields()}
    assert found >= {"model.dtype", "model.padding_side", "metrics.eps_units",
                     "metrics.coupling_method", "metrics.bootstrap_scheme", "metrics.level",
                     "data.format"}  # fmt: skip


@pytest.mark.parametrize(("node", "name", "choice"), _choice_fields(),
                         ids=[f"{n}.{f}" for n, f, _ in _choice_fields()])  # fmt: skip
def test_every_choice_field_refuses_a_bad_value_at_compose(compose_cfg, node, name, choice):
    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg("train", ["model=tiny", f"{node}.{name}=bogus"])
    msg = f"{e.value}\n{e.value.__cause__}"
    assert f"full_key: {node}.{name}" in msg and f"{node}.{name}=bogus" in msg, msg
    assert f"[{choice.options()}]" in msg, msg


def _text(node: ast.AST) -> str:
    """The constant text of a message expression, each f-string field as ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return " ".join(_text(c) for c in ast.iter_child_nodes(node))


def _messages(tree: ast.AST):
    """(line, text) of every raised message and every message appended to a problem list."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            yield node.lineno, _text(node.exc)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "append" and node.args):  # fmt: skip
            yield node.lineno, _text(node.args[0])


def _membership_tests(tree: ast.AST):
    """(line, strings) of every ``x in (<string literals>)`` test."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            seq = node.comparators[0]
            if isinstance(seq, ast.Tuple | ast.List | ast.Set):
                yield node.lineno, {e.value for e in seq.elts if isinstance(e, ast.Constant)}


def choice_spelled_out(path: str, source: str) -> list[str]:
    tree = ast.parse(source)
    found = []
    for choice in _choices():
        if (path, choice.__name__) in EXEMPT_CHOICES:
            continue
        values = {c.value for c in choice}
        for line, strings in _membership_tests(tree):
            if values <= strings:
                found.append(f"{path}:{line}: tests membership in {choice.__name__}'s options")
        for line, text in _messages(tree):
            if all(re.search(rf"'{re.escape(v)}'|\b{re.escape(v)}\b,", text) for v in values):
                found.append(f"{path}:{line}: lists {choice.__name__}'s options: {text!r}")
    return found


def _range_keys() -> dict[str, list[str]]:
    """Every key with a range rule -> the tables that hold a rule for it."""
    tables = {
        "vat.preflight.RULES": set(preflight.RULES),
        "MetricsSettings.RULES": {f"metrics.{k}" for k in MetricsSettings.RULES},
        "LoraSpec.RULES": {f"model.lora.{k}" for k in LoraSpec.RULES},
        "vat.anchor": {"method.module.anchor_weight", "method.anchor_per_pair"},
    }
    keys: dict[str, list[str]] = {}
    for table, ks in tables.items():
        for k in ks:
            keys.setdefault(k, []).append(table)
    return keys


def range_stated(path: str, source: str) -> list[str]:
    found = []
    for key in _range_keys():
        leaf = key.rsplit(".", 1)[1]
        k, leaf = re.escape(key), re.escape(leaf)
        pattern = rf"\b{k}=\{{\}}(: expected| must)|\b{k} must be|(?<![.\w]){leaf} must be"
        if (path, key) in EXEMPT:
            continue
        for line, text in _messages(ast.parse(source)):
            if re.search(pattern, text):
                found.append(f"{path}:{line}: states the rule of {key}: {text!r}")
    return found


def test_each_range_key_has_one_rule():
    keys = _range_keys()
    assert {"metrics.eps", "metrics.ci", "callbacks.vat.every_n_steps", "model.lora.r"} <= set(keys)
    assert not {k: t for k, t in keys.items() if len(t) > 1}
    # each Settings dataclass checks only its own fields
    for cls in (MetricsSettings, LoraSpec):
        assert issubclass(cls, Settings) and set(cls.RULES) <= set(cls.__dataclass_fields__)
    assert anchor.ANCHOR_WEIGHT.ok(0.5) and not anchor.ANCHOR_PER_PAIR.ok(-1)


def test_no_module_writes_a_rule_a_second_time():
    found = []
    for p in SOURCES:
        path, source = str(p.relative_to(ROOT)), p.read_text()
        found += choice_spelled_out(path, source) + range_stated(path, source)
    assert not found, "a rule written twice:\n" + "\n".join(found)
    exempt = [*EXEMPT, *EXEMPT_CHOICES]
    assert all((ROOT / path).is_file() for path, _ in exempt), "an exemption names no file"


def test_the_scan_finds_a_rule_written_twice():
    """What the scan is for: the checks this change removed would each be found."""
    old = """
def f(method, cfg, problems):
    if method not in ("spearman", "kendall"):
        raise ValueError(f"unknown coupling method {method!r}; expected 'spearman' or 'kendall'")
    if cfg.every_n_steps < 1:
        raise ValueError(f"callbacks.vat.every_n_steps must be >= 1, got {cfg.every_n_steps}")
    problems.append(f"metrics.ci={cfg.ci}: expected a level in (0, 1), e.g. 0.95")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
"""
    assert len(choice_spelled_out("old.py", old)) == 2
    assert len(range_stated("old.py", old)) == 3
