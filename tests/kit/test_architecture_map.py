"""ARCHITECTURE.md's map is the tree: in folder order, every package listed, nothing that is gone.

The map is the first fenced block of ARCHITECTURE.md. A line that starts with a path (a name
ending in `/` or `.py`) is an entry; its indentation says where it lives: column 0 is the
repository root, two spaces a child of `src/apps_api/`, four a child of the package above it.
Other lines continue the description of the entry above.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "apps_api"
ENTRY = re.compile(r"^( *)(\S+(?:/|\.py))(?:\s|$)")


def _map_lines() -> list[str]:
    text = (REPO / "ARCHITECTURE.md").read_text()
    block = text.split("```", 2)[1]
    return block.splitlines()[1:]


def _entries() -> list[tuple[int, str]]:
    """(indent, path) of each entry, the path made relative to the repository root."""
    entries: list[tuple[int, str]] = []
    parent = ""
    for line in _map_lines():
        match = ENTRY.match(line)
        if not match:
            continue
        indent, name = len(match.group(1)), match.group(2)
        if indent == 0:
            entries.append((0, name))
        elif indent == 2:
            parent = f"src/apps_api/{name}"
            entries.append((2, parent))
        elif indent == 4:
            entries.append((4, f"{parent.rstrip('/')}/{name}"))
    return entries


def _names_in_order(paths: list[str]) -> list[str]:
    return [path.rstrip("/").rsplit("/", 1)[-1] for path in paths]


def test_every_entry_exists() -> None:
    missing = [path for _, path in _entries() if not (REPO / path).exists()]
    assert not missing, f"ARCHITECTURE.md names what the tree no longer has: {missing}"


def test_every_package_and_top_module_is_listed() -> None:
    listed = {path.rstrip("/") for indent, path in _entries() if indent == 2}
    present = {
        str(child.relative_to(REPO))
        for child in PACKAGE.iterdir()
        if (child.is_dir() and (child / "__init__.py").exists())
        or (child.suffix == ".py" and child.name not in {"__init__.py", "__main__.py"})
    }
    assert not present - listed, f"not on ARCHITECTURE.md's map: {sorted(present - listed)}"


def test_the_map_is_in_folder_order() -> None:
    """Each level in the order a folder listing shows it: by name."""
    entries = _entries()
    top = _names_in_order([path for indent, path in entries if indent == 2])
    assert top == sorted(top), f"src/apps_api/ entries out of order: {top}"
    children: dict[str, list[str]] = {}
    for indent, path in entries:
        if indent == 4:
            children.setdefault(path.rsplit("/", 1)[0], []).append(path)
    for package, paths in children.items():
        names = _names_in_order(paths)
        assert names == sorted(names), f"{package}/ entries out of order: {names}"
