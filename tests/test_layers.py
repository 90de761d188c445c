"""The layers of docs/architecture.md, checked on every import in chat_tui/.

protocol at the bottom; store and transport on it; the core on those; the faces (the
Textual app and the CLI) on the core only. Nothing outside the app imports Textual."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "chat_tui"

BESIDE_PROTOCOL = {"config", "backoff", "sqlite_files"}
"""Top-level modules that every layer may read."""

MAY_IMPORT: dict[str, set[str]] = {
    "protocol": {"protocol"},
    "config": {"protocol"},
    "backoff": set(),
    "sqlite_files": set(),
    "store": {"protocol", "store"} | BESIDE_PROTOCOL,
    "transport": {"protocol", "transport"} | BESIDE_PROTOCOL,
    "core": {"protocol", "store", "transport", "core"} | BESIDE_PROTOCOL,
    "tui": {"protocol", "core", "tui"} | BESIDE_PROTOCOL,
    "cli": {"protocol", "core", "cli", "tui", "admin", "archive"} | BESIDE_PROTOCOL,
    "admin": {"protocol", "core", "admin"} | BESIDE_PROTOCOL,
    "archive": {"protocol", "core", "archive"} | BESIDE_PROTOCOL,
    "__main__": {"cli"},
}


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _modules() -> list[Path]:
    return [
        p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "__init__.py" or p.parent != PACKAGE
    ]


def test_imports_point_down_the_layers_only() -> None:
    wrong: list[str] = []
    for path in _modules():
        layer = _layer(path)
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] != "chat_tui" or len(parts) < 2:
                continue
            if parts[1] not in MAY_IMPORT[layer]:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {module}")
    assert wrong == []


def test_only_the_app_imports_textual() -> None:
    wrong = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if _layer(path) != "tui"
        and any(m.split(".")[0] in ("textual", "rich") for m in _imports(path))
    ]
    assert wrong == []


def test_the_cli_loads_the_app_in_one_place() -> None:
    loading = [
        str(path.relative_to(PACKAGE))
        for path in _modules()
        if _layer(path) == "cli" and any(m.startswith("chat_tui.tui") for m in _imports(path))
    ]
    assert loading == ["cli/main.py"]


def test_no_face_reaches_for_the_clients_store() -> None:
    wrong: list[str] = []
    for path in _modules():
        if _layer(path) not in ("tui", "cli", "admin"):
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("store", "transport"):
                wrong.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    assert wrong == []
