"""The package's shape: no import cycle, no oversized module, no dispatch on a method's name.

Fast and model-free: every check reads the source of ``vat/`` with ``ast``."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vat"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in (vat.x.y.func -> vat.x.y)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(mod: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Every vat module ``mod`` imports, at module level or inside a function.

    ``from vat.x import y`` is an edge to ``vat.x.y`` when y is a submodule, else to ``vat.x``;
    relative imports resolve against the module's package."""
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]  # fmt: skip
        else:
            continue
        for t in targets:
            if t == "vat" or t.startswith("vat."):
                target = resolve(t, known)
                if target and target != mod:
                    edges.add(target)
    return edges


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {mod: imports_of(mod, path, known) for mod, path in known.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative: no recursion limit)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp.append(member)
                        if member == node:
                            break
                    out.append(sorted(comp))
    return out


def a_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete cycle through a component's first member (for the failure message)."""
    inside, start = set(members), members[0]
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & inside):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    nxt.append(child)
        frontier = nxt
    return members


def test_the_cycle_finder_finds_cycles_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    comps = [c for c in strongly_connected(graph) if len(c) > 1]
    assert comps == [["a", "b", "c"]] and a_cycle(graph, comps[0]) == ["a", "b", "c", "a"]


def test_edges_resolve_submodules_and_relative_imports(tmp_path):
    known = {"vat": PKG / "__init__.py", "vat.x": PKG / "x", "vat.x.y": PKG / "x/y.py",
             "vat.z": PKG / "z.py"}  # fmt: skip
    src = tmp_path / "z.py"
    src.write_text("from vat.x import y, helper\nimport vat\n\ndef f():\n    from .x.y import g\n")
    assert imports_of("vat.z", src, known) == {"vat", "vat.x", "vat.x.y"}


def test_no_import_cycle_in_vat():
    graph = import_graph()
    assert len(graph) > 50 and graph["vat.train"]  # the parser sees the package
    cycles = [a_cycle(graph, c) for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def line_counts() -> dict[str, int]:
    return {m: len(p.read_text().splitlines()) for m, p in modules().items()}


def test_no_module_in_vat_is_over_400_lines():
    over = {m: n for m, n in line_counts().items() if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{m} ({n})" for m, n in sorted(over.items(), key=lambda kv: -kv[1])
    )


# A comparison of a method (``cfg.method.name``, ``a["method"]``, ``method``) with a method's name
# ("dpo", one of conf/method/*.yaml) is dispatch that each new method has to be added to by hand,
# where configuring what the method does (its module, its data, its intervention) would do.
METHOD_NAMES = {p.stem for p in (ROOT / "conf" / "method").glob("*.yaml")}
MENTIONS_METHOD = re.compile(r"\bmethod\b")


def _names_a_method(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in METHOD_NAMES
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_names_a_method(e) for e in node.elts)
    return False


def dispatch_in(tree: ast.AST) -> list[ast.AST]:
    """The comparisons and ``match`` statements in `tree` that dispatch on a method's name."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
        elif isinstance(node, ast.Match):
            sides = [node.subject, *(c.pattern.value for c in node.cases
                                     if isinstance(c.pattern, ast.MatchValue))]  # fmt: skip
        else:
            continue
        on_method = [s for s in sides if MENTIONS_METHOD.search(ast.unparse(s))]
        by_name = any("method.name" in ast.unparse(s) for s in on_method)
        if on_method and (by_name or any(_names_a_method(s) for s in sides)):
            hits.append(node)
    return hits


def test_the_dispatch_finder_sees_comparisons_and_matches():
    src = """
if cfg.method.name == other: pass
if a["method"] in ("dpo", "sft"): pass
match method:
    case "prompting": pass
if a["method"] == "checkpoint" or cfg.value.name == "dpo": pass
"""
    assert sorted(n.lineno for n in dispatch_in(ast.parse(src))) == [2, 3, 4]


def method_name_dispatch() -> list[str]:
    hits = []
    for mod, path in modules().items():
        for node in dispatch_in(ast.parse(path.read_text(), str(path))):
            hits.append(f"{mod}:{node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return hits


def test_no_string_dispatch_on_the_method_name():
    hits = method_name_dispatch()
    assert not hits, "dispatch on the method's name:\n" + "\n".join(hits)


# No module outside vat/taxonomy/ names a value of a bundled taxonomy (in code: a string constant
# or an identifier; docstrings and comments may give examples) or the default taxonomy's name:
# the value system is an object the pipeline is given (`vat.taxonomy.Taxonomy`).
def taxonomy_names() -> tuple[set[str], set[str]]:
    """(every name a string constant may not be, the names an identifier may not be): micro-values
    are common words (``clean``), so identifiers are checked against values and taxonomies only."""
    from vat.taxonomy import available, load_taxonomy

    strings, idents = {"schwartz"}, {"schwartz"}
    for t in map(load_taxonomy, available()):
        strings |= {t.name, *t.value_names, *t.micro_names, *(g for g, _ in t.groups)}
        idents |= {t.name, *t.value_names}
    return strings, idents - {"power"}  # statistical power (vat.metrics.power) is no value


def value_names_in(source: str, names: set[str], idents: set[str] | None = None) -> list[str]:
    tree = ast.parse(source)
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }  # fmt: skip
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) not in docstrings and node.value.strip().lower() in names:
                found.append(f"line {node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Name | ast.Attribute | ast.arg):
            ident = getattr(node, "id", None) or getattr(node, "attr", None) or node.arg
            if ident.lower() in (names if idents is None else idents) or ident.endswith("_VALUES"):
                found.append(f"line {node.lineno}: {ident}")
    return found


def test_the_value_name_finder_sees_constants_not_docstrings():
    names = {"benevolence", "power"}
    src = '"""About benevolence."""\nx = "Benevolence"\ndef f(power):\n    """power."""\n'
    assert value_names_in(src, names) == ["line 2: 'Benevolence'", "line 3: power"]


def test_no_module_outside_the_taxonomy_package_names_a_value():
    strings, idents = taxonomy_names()
    bad = {
        str(p.relative_to(ROOT)): hits
        for p in sorted(PKG.rglob("*.py"))
        if "taxonomy" not in p.relative_to(PKG).parts
        and (hits := value_names_in(p.read_text(), strings, idents))
    }
    assert not bad, f"modules that name a value (take a Taxonomy instead): {bad}"
