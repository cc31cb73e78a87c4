"""`shared/` is a library the services stand on: it imports nothing from `services/`, and
no service imports another (they learn about each other only from events)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICE_NAMES = sorted(
    p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").is_file()
)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (functions' local imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _python_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize("path", _python_files(ROOT / "shared"), ids=str)
def test_shared_imports_nothing_from_services(path: Path) -> None:
    bad = sorted(m for m in _imports(path) if m == "services" or m.startswith("services."))
    assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_no_service_imports_another(service: str) -> None:
    others = [f"services.{name}" for name in SERVICE_NAMES if name != service]
    for path in _python_files(ROOT / "services" / service):
        bad = sorted(
            m for m in _imports(path) if any(m == o or m.startswith(o + ".") for o in others)
        )
        assert bad == [], f"{path.relative_to(ROOT)} imports {bad}"


def test_services_import_no_composition_root() -> None:
    root_modules = {"services", "services.fleet", "services.cli", "services.settings"}
    for service in SERVICE_NAMES:
        for path in _python_files(ROOT / "services" / service):
            bad = sorted(_imports(path) & root_modules)
            assert bad == [], f"{path.relative_to(ROOT)} imports the composition root: {bad}"


@pytest.mark.parametrize("service", SERVICE_NAMES)
def test_no_sql_of_a_service_names_another_services_schema(service: str) -> None:
    # Each service's connections see its own schema alone (search_path); naming another's
    # would read a table it does not own.
    others = [name for name in SERVICE_NAMES if name != service]
    for path in sorted((ROOT / "services" / service).rglob("*.sql")):
        text = path.read_text().lower()
        bad = [name for name in others if f"{name}." in text or f'"{name}"' in text]
        assert bad == [], f"{path.relative_to(ROOT)} names the schema of {bad}"
