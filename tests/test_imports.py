"""Every ``from .x import y`` inside bgclear points at a module and a name that exist.

Read statically (no module is imported), so imports inside functions — the ones that
load optional extras such as Ray or torch lazily, and that no other test may reach —
are checked too. Splitting a module into a package once left such imports pointing
inside the new package, and every batch job failed at run time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
MODULES = sorted((SRC / "bgclear").rglob("*.py"))


def _module_file(dotted: str) -> Path | None:
    base = SRC.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines: its top-level statements, and those inside top-level if/try (optional imports)."""
    statements = []
    for node in ast.parse(path.read_text()).body:
        statements += [n for n in ast.walk(node) if isinstance(n, ast.stmt)] if isinstance(node, (ast.If, ast.Try)) else [node]
    names: set[str] = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _unresolved(path: Path) -> list[str]:
    dotted = ".".join(path.relative_to(SRC).with_suffix("").parts)
    package = dotted.removesuffix(".__init__") if path.name == "__init__.py" else dotted.rpartition(".")[0]
    problems = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(parts + ([node.module] if node.module else []))
        elif (node.module or "").split(".")[0] == "bgclear":
            target = node.module
        else:
            continue
        target_file = _module_file(target)
        if target_file is None:
            problems.append(f"line {node.lineno}: no module {target}")
            continue
        defined = _top_level_names(target_file)
        for alias in node.names:
            if alias.name != "*" and alias.name not in defined and _module_file(f"{target}.{alias.name}") is None:
                problems.append(f"line {node.lineno}: {target} has no {alias.name}")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_every_internal_import_resolves(path: Path) -> None:
    assert _unresolved(path) == []


def test_the_check_sees_a_broken_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "bgclear" / "pkg"
    package.mkdir(parents=True)
    (tmp_path / "bgclear" / "__init__.py").write_text("")
    (tmp_path / "bgclear" / "real.py").write_text("def here():\n    pass\n")
    (package / "__init__.py").write_text("")
    (package / "user.py").write_text(
        "def lazy():\n    from .real import here\n    from ..real import here, gone\n    from ..real import here as ok\n"
    )
    monkeypatch.setitem(globals(), "SRC", tmp_path)
    assert _unresolved(package / "user.py") == ["line 2: no module bgclear.pkg.real", "line 3: bgclear.real has no gone"]
