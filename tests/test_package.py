"""The package's shape: each module says its job, the imports between modules have no cycle, importing is cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mlops_helpers
from mlops_helpers import names

PACKAGE = Path(mlops_helpers.__file__).parent


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports (at any depth of its code)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlops_helpers"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                out.add(target if target in modules else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("mlops_helpers")}
    return out - {name, "mlops_helpers"}


def test_every_module_opens_with_its_job():
    for name, path in _modules().items():
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.splitlines()[0]) > 20, f"{name} has no first docstring line saying what it does"


def test_the_package_docstring_names_every_module():
    top = {name.split(".")[1] for name in _modules() if name.count(".") >= 1}
    for module in top - {"__main__"}:
        assert f"``{module}``" in mlops_helpers.__doc__, f"the package docstring's table lacks {module}"


def test_the_import_graph_has_no_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*trail, nxt])}")
            if nxt in graph and not state.get(nxt):
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in graph:
        if not state.get(name):
            visit(name, [name])


def test_the_course_names_have_one_home():
    """No module assigns one of the course's names itself: they are imported from ``names``."""
    values = {v for k, v in vars(names).items() if k.isupper() and isinstance(v, str)}
    for name, path in _modules().items():
        if name == "mlops_helpers.names":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and node.value.value in values:
                targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
                if targets and targets[0].isupper():
                    raise AssertionError(f"{name} defines {targets[0]} = {node.value.value!r}: import it from names")


def test_importing_the_package_and_its_plumbing_is_cheap():
    code = (
        "import sys; import mlops_helpers.workspace, mlops_helpers.data, mlops_helpers.serving, "
        "mlops_helpers.registry, mlops_helpers.governance; "
        "print(','.join(m for m in ('mlflow', 'evidently', 'kfp', 'matplotlib', 'fastapi') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "", f"importing the plumbing loaded {loaded}"
