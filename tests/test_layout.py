"""The layers point one way, and the library never imports Streamlit.

Bottom to top: the shared basics (device, downloads, threads, the paper's numbers, the settings
convention), then models and data, then training, then analysis, then the figures, then the
playground (its engine and figures), then the UI, the CLI and the app. A module may import from
its own layer or any layer below; every import counts, also one inside a function, and no two
modules may import each other, directly or round a loop.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS = (
    ("explorer", "explorer.device", "explorer.download", "explorer.threads", "explorer.paper", "explorer.fields",
     "explorer.measurements"),
    ("explorer.models", "explorer.data"),
    ("explorer.train",),
    ("explorer.analysis",),
    ("explorer.figures", "explorer.report"),
    ("explorer.playground",),
    ("explorer.ui", "explorer.cli", "explorer.app", "explorer.__main__"),
)


def layer_of(module: str, layers=LAYERS) -> int:
    """The layer of the longest prefix that names ``module`` or a package holding it."""
    best, best_length = None, -1
    for index, prefixes in enumerate(layers):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layout.py")
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path, package: str) -> set[str]:
    """The modules of ``package`` that the file at ``path`` imports, wherever in the file."""
    modules = {module_name(file, root) for file in (root / package).rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from explorer.data import base` imports the module explorer.data.base.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in modules else node.module
                     for alias in node.names]
        else:
            continue
        found |= {name for name in names if name == package or name.startswith(package + ".")}
    return found


def import_graph(root: Path, package: str = "explorer") -> dict[str, set[str]]:
    return {module_name(path, root): imports_of(path, root, package) for path in sorted((root / package).rglob("*.py"))}


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    return sorted(f"{source} (layer {layer_of(source, layers)}) imports {target} (layer {layer_of(target, layers)})"
                  for source, targets in graph.items() for target in targets
                  if layer_of(target, layers) > layer_of(source, layers))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan's algorithm), and self-imports."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph.get(node, ()):
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_no_import_points_up_a_layer():
    assert upward_imports(import_graph(ROOT)) == []


def test_no_import_cycle_not_even_inside_a_function():
    assert cycles(import_graph(ROOT)) == []


def test_the_checks_catch_an_upward_import_and_a_hidden_cycle(tmp_path):
    """The two checks above on a made-up package that breaks both rules, one import inside a function."""
    package = tmp_path / "pkg"
    for name, source in {
        "__init__.py": "",
        "low.py": "def later():\n    from pkg.high import thing\n",
        "high.py": "import pkg.low\nthing = 1\n",
        "a.py": "from pkg import b\n",
        "b.py": "def f():\n    import pkg.a\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)
    layers = (("pkg", "pkg.low", "pkg.a", "pkg.b"), ("pkg.high",))
    graph = import_graph(tmp_path, "pkg")
    assert upward_imports(graph, layers) == ["pkg.low (layer 0) imports pkg.high (layer 1)"]
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b"], ["pkg.high", "pkg.low"]]


@pytest.mark.parametrize("module", ["explorer.data.base", "explorer.models.cost", "explorer.playground.engine",
                                    "explorer.train.trainer"])
def test_named_homes_exist(module):
    """The README's layout sends a newcomer to these modules in one hop."""
    assert (ROOT / Path(*module.split("."))).with_suffix(".py").is_file()


CHECK = """
import importlib, pkgutil, sys
sys.modules["streamlit"] = None  # any `import streamlit` now fails
import explorer
for module in pkgutil.walk_packages(explorer.__path__, "explorer."):
    if module.name == "explorer.app" or module.name.startswith("explorer.ui") or module.name == "explorer.__main__":
        continue
    importlib.import_module(module.name)
    print(module.name)
"""


def test_every_library_module_imports_without_streamlit():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    imported = set(result.stdout.split())
    assert {"explorer.cli", "explorer.models.registry", "explorer.analysis.complexity", "explorer.figures",
            "explorer.playground.engine", "explorer.data.base"} <= imported


def test_pages_are_thin():
    for page in (ROOT / "pages").glob("*.py"):
        source = page.read_text()
        assert "import torch" not in source, f"{page.name} does tensor work; move it into explorer/"
        assert len(source.splitlines()) < 220, f"{page.name} is long; move logic into explorer/"
