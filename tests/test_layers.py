"""Imports run one way: encoders <- gallery <- search; core wires the site and no app imports it.

A module that imports from a layer above it (gallery importing search, encoders importing gallery
or search, any app importing core) fails here, wherever the import hides: at module level, inside
a function, or behind ``if TYPE_CHECKING``. core (middleware, error pages, media serving) may use
gallery's format registry, never search.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# What each app must never import (its own layer and those below are fine).
FORBIDDEN = {
    "core": {"search"},
    "encoders": {"core", "gallery", "search"},
    "gallery": {"core", "search"},
    "search": {"core"},
}


def imported_apps(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) for every absolute import in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


def modules_of(app: str) -> list[Path]:
    return sorted((ROOT / app).rglob("*.py"))


@pytest.mark.parametrize("app", sorted(FORBIDDEN))
def test_no_import_points_back_up(app):
    assert modules_of(app), f"{app}/ has no modules: the layout changed, update FORBIDDEN"
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in modules_of(app)
        for package, line in sorted(imported_apps(path))
        if package in FORBIDDEN[app]
    ]
    assert not wrong, "imports pointing back up the layers:\n" + "\n".join(wrong)


def test_the_check_sees_an_upward_import(tmp_path):
    """The test above can fail: a function-level import of search from gallery is caught."""
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from search import selectors\n    import search.views as v\n")
    assert {package for package, _ in imported_apps(module)} == {"search"}
