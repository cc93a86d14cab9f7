"""The shape of the house: what may import what, what the core may name, what the code may cite."""
import ast
import re
import sys
from pathlib import Path

import pytest

from repro import registry
from repro.plugins import discover

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "repro"
KERNELS = REPO / "kernels"
# The core's modules that use the kernel library: exporting a trained model and benchmarking.
USES_KERNELS = {"repro/export.py", "repro/benchmarks.py"}


def imports(path: Path) -> set[str]:
    """Absolute names of the modules a file imports (relative imports resolved), wherever in the file."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module)
    return names


def sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_orchestration_does_not_import_the_kernels():
    for path in sources(CORE):
        rel = str(path.relative_to(REPO))
        if rel in USES_KERNELS:
            continue
        wrong = {name for name in imports(path) if name.split(".")[0] in ("repro_kernels", "kernels")}
        assert not wrong, f"{rel} imports {wrong}: only {sorted(USES_KERNELS)} use the kernel library"


def test_the_kernels_depend_only_on_torch_and_repro_nn():
    allowed_repro = ("repro.nn",)
    for path in sources(KERNELS):
        for name in imports(path):
            top = name.split(".")[0]
            if top in ("kernels", "repro_kernels") or top in sys.stdlib_module_names or top == "torch":
                continue
            assert name.startswith(allowed_repro), f"{path.relative_to(REPO)} imports {name}"


def test_the_core_imports_no_plugin():
    for path in sources(CORE):
        wrong = {name for name in imports(path) if name.split(".")[0] in ("repro_methods", "methods")}
        assert not wrong, f"{path.relative_to(REPO)} imports {wrong}: plugins are found by repro/plugins.py only"


def _string_constants(path: Path) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_core_names_no_plugin_component():
    """No block, model, quantizer, recipe ... that a paper registers appears in the core's code
    (as a default or otherwise): a paper's parts are named by its paper.yaml only."""
    tables = {name: value for name, value in vars(registry).items() if isinstance(value, registry.Registry)}
    discover()
    from_plugins = set()
    for table in tables.values():
        for name in table.names():
            module = getattr(table[name], "__module__", "")
            if module.startswith("repro_methods"):
                from_plugins.add(name)
    assert {"hpm", "lbb", "basic"} <= from_plugins
    for path in sources(CORE):
        named = from_plugins & _string_constants(path)
        assert not named, f"{path.relative_to(REPO)} names the plugins' {named}"


@pytest.mark.parametrize("folder", ["repro", "methods", "kernels"])
def test_nothing_cites_files_outside_the_repository(folder):
    for path in sorted((REPO / folder).rglob("*")):
        if path.suffix in (".py", ".yaml", ".cpp", ".cu") and "__pycache__" not in path.parts:
            text = path.read_text()
            for needle in ("shared/", "FACTS.md"):
                assert needle not in text, f"{path.relative_to(REPO)} cites {needle}"


def test_import_names_cannot_collide():
    """methods/, kernels/ and dashboard/ keep their folders but import under the project's own prefix."""
    import repro_dashboard
    import repro_kernels
    import repro_methods

    assert Path(repro_methods.__file__).parent == REPO / "methods"
    assert Path(repro_kernels.__file__).parent == REPO / "kernels"
    assert Path(repro_dashboard.__file__).parent == REPO / "dashboard"
    assert "methods" not in sys.modules and "kernels" not in sys.modules and "dashboard" not in sys.modules


@pytest.mark.parametrize("path", sources(REPO / "dashboard") + [CORE / "compare.py", CORE / "benchmarks.py"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_the_dashboard_and_compare_read_results_only_through_repro_results(path):
    """No second SQL path: no query of their own (sqlalchemy's select)."""
    names = imports(path)
    assert not {n for n in names if n.startswith("sqlalchemy") and n != "sqlalchemy.exc"}, names
    assert not re.search(r"(?<![\w.])select\(", path.read_text()), f"{path.relative_to(REPO)} queries the database itself"
    if path.parent.name == "views":
        assert "from repro import results" in path.read_text()


def test_every_registered_task_provides_the_task_protocol():
    from repro.tasks import get_task
    from repro.tasks.base import Task

    members = set(Task.__annotations__) | {name for name, value in vars(Task).items()
                                            if callable(value) and not name.startswith("_")}
    assert {"finalize", "load_data", "batch", "evaluate", "measure", "distill_loss", "metrics"} <= members
    discover()
    for name in registry.TASKS.names():
        task = get_task(name)
        missing = {m for m in members if not hasattr(task, m)}
        assert not missing, f"task {name} lacks {missing}"
        assert set(task.profiles) <= {"smoke", "proxy"} and name == task.name
