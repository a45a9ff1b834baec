"""The layers hold: imports between the packages of `src/apps_api` run one way.

apps -> installations -> delivery -> models/kit; no cycle between packages; `kit` and `models`
import no domain package, and `kit` imports no observability; no package imports another's routes
(`endpoints`, the console's pages) (ARCHITECTURE.md, layers). The foundation's rules hold for
imports under `if TYPE_CHECKING:` too: `kit` imports no model at all.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "src" / "apps_api"
# The building blocks every domain stands on, and what each may import (at run time or for
# typing): settings stand alone, kit on them, models on kit.
FOUNDATION: dict[str, set[str]] = {"settings": set(), "kit": {"settings"}, "models": {"kit", "settings"}}


def _package_of(path: Path) -> str:
    relative = path.relative_to(ROOT)
    return relative.parts[0].removesuffix(".py")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for annotations only)."""
    nodes: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
    return nodes


def _runtime_imports(path: Path, *, typing_too: bool = False) -> list[list[str]]:
    """The `apps_api` names a file imports at run time, split on dots (`from m import n`: m and m.n);
    with `typing_too`, also those imported under `if TYPE_CHECKING:` only."""
    imported: list[list[str]] = []
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree) if typing_too else _runtime_nodes(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        imported.extend(
            parts for name in names if (parts := name.split("."))[0] == "apps_api" and len(parts) > 1
        )
    return imported


def import_graph(*, typing_too: bool = False) -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it at run time (nested imports too);
    with `typing_too`, also those that import it under `if TYPE_CHECKING:` only."""
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for path in ROOT.rglob("*.py"):
        source = _package_of(path)
        for parts in _runtime_imports(path, typing_too=typing_too):
            target = parts[1]
            is_module = (ROOT / target).is_dir() or (ROOT / f"{target}.py").is_file()
            if is_module and target != source:
                graph[source][target].add(str(path.relative_to(ROOT)))
    return graph


def _cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
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
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def test_no_cycle_between_packages() -> None:
    graph = import_graph()
    cycles = _cycles(graph)
    details = [
        f"{' <-> '.join(cycle)}: "
        + "; ".join(f"{a}->{b} in {sorted(graph[a][b])}" for a in cycle for b in cycle if b in graph[a])
        for cycle in cycles
    ]
    assert not cycles, "import cycles between packages:\n" + "\n".join(details)


def test_foundation_imports_no_domain() -> None:
    """Not even for typing: an annotation naming a model ties kit to the models all the same."""
    graph = import_graph(typing_too=True)
    wrong = {
        f"{source} -> {target} ({sorted(files)})"
        for source, allowed in FOUNDATION.items()
        for target, files in graph.get(source, {}).items()
        if target not in allowed
    }
    assert not wrong, f"settings/kit/models import above their layer: {sorted(wrong)}"


def test_domain_order() -> None:
    """apps -> installations -> delivery: never the other way."""
    graph = import_graph()
    order = ["apps", "installations", "delivery"]
    backwards = {
        f"{order[j]} -> {order[i]} ({sorted(graph[order[j]][order[i]])})"
        for i in range(len(order))
        for j in range(i + 1, len(order))
        if order[i] in graph.get(order[j], {})
    }
    assert not backwards, f"imports against the layer order: {sorted(backwards)}"


def test_no_package_imports_another_packages_routes() -> None:
    """Routes are leaves: what another package needs of one (a loader, a query, a schema) lives in
    its dependencies, repository or service modules, never in its `endpoints` (nor in a console
    page). Only `main.py`, which mounts the routers, imports them."""
    wrong = set()
    for path in ROOT.rglob("*.py"):
        source = _package_of(path)
        for parts in _runtime_imports(path):
            routes = parts[2:3] == ["endpoints"] or parts[1:3] == ["console", "pages"]
            if routes and parts[1] != source and path != ROOT / "main.py":
                wrong.add(f"{path.relative_to(ROOT)} imports {'.'.join(parts[:4])}")
    assert not wrong, f"imports of another package's routes: {sorted(wrong)}"


def test_the_graph_is_read() -> None:
    """The walk sees the imports it must (a broken walk would pass every check above)."""
    graph = import_graph()
    assert "installations" in graph["apps"]
    assert "delivery" in graph["installations"]
    assert "kit" in graph["delivery"]
