"""The package's import graph: floors, imports that point down only, no circles.

Every ``import`` and ``from ... import`` of ``dhmd_graph`` counts, at module level or inside a
function. A *unit* is a top-level module (``model``) or subpackage (``data``); each unit sits
on one floor of :data:`FLOORS`, and a unit may import only units on lower floors (or
itself). Units on the same floor are siblings and never import each other: the trainer
knows no data format, the losses no layer, the metrics no reader. The package root
(``dhmd_graph/__init__.py``) names its public objects as strings, imports nothing up front,
and is not a unit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "dhmd_graph"

FLOORS = [
    # the foundation, in its own order: each imports only those before it
    ["errors"], ["fields"], ["tasks"], ["protocols"], ["allocator", "files", "openmp"],
    # files in, batches out; reusable layers; pure losses; metrics; checkpoint files
    ["data", "nn", "losses", "metrics", "checkpoint"],
    ["config"],                        # the dataclasses of the model
    ["model", "baselines", "extract"],  # the model; the baselines; recordings -> arrays
    ["train"],                         # the generic loop: knows a model by its hooks only
    ["presets", "schedule"],           # the presets; the small-data recipe and the run header
    ["experiment"],                    # assemble, fit to data, train
    ["trained"],                       # a finished run, for eval, predict, inspect
    ["inspect"],
    ["cli"],
]
FLOOR = {unit: level for level, units in enumerate(FLOORS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, set[str]]:
    """Each module of the package and the ``dhmd_graph`` modules it imports."""
    names = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                submodules = {f"{base}.{alias.name}" for alias in node.names} & set(names)
                targets |= submodules
                if len(submodules) < len(node.names):  # names defined in ``base`` itself
                    targets.add(base)
        # the root imports nothing up front (its exports are strings), so any unit may use it
        graph[name] = {t for t in targets if t in names and t not in (name, "dhmd_graph")}
    return graph


GRAPH = _modules()


def _unit(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_unit_has_a_floor():
    units = {_unit(module) for module in GRAPH} - {None}
    assert units <= set(FLOOR), f"units without a floor: {sorted(units - set(FLOOR))}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_point_down(module):
    unit = _unit(module)
    if unit is None:
        return  # the package root names its exports as strings
    wrong = [target for target in GRAPH[module]
             if _unit(target) != unit and (_unit(target) is None
                                           or FLOOR[_unit(target)] >= FLOOR[unit])]
    assert not wrong, (f"{module} (floor {FLOOR[unit]}) imports {wrong}: an import that runs "
                       "back up, or sideways between siblings")


def test_no_import_circles():
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    assert not cycles, f"import circles: {cycles}"


def test_the_trainer_knows_no_data_format():
    train = [module for module in GRAPH if _unit(module) == "train"]
    assert train and not any(_unit(t) == "data" for m in train for t in GRAPH[m])
