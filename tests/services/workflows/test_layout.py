"""The workflows service's sub-package contract (STYLE.md), checked on the source.

Each sub-package has the same files; ``endpoints.py`` maps HTTP to service calls (no
queries, no tables); ``service.py`` and ``repository.py`` know nothing of HTTP; a
sub-package uses a sibling through its ``service``, ``schemas`` or ``models``, never
its ``endpoints`` or ``repository``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_boundaries import SRC, _module_name

SERVICE = SRC / "services" / "workflows"
PACKAGE = "orchestrion.services.workflows"
SUBPACKAGES = {
    "definitions": {"models.py", "parsing.py"},
    "executions": {"live.py"},
    "automation": {"models.py"},
    "llm": {"models.py", "backend.py", "token_bus.py", "metrics.py"},
    "mcp": {"models.py", "server.py", "template_tools.py", "tools.py"},
}
CONTRACT = {"__init__.py", "endpoints.py", "service.py", "repository.py", "schemas.py"}
HTTP = ("fastapi", "starlette")


def _all_imports(path: Path) -> list[str]:
    """Every module ``path`` imports, and every ``module.name`` it imports names from."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.append(node.module)
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_service_is_its_sub_packages_and_an_assembler() -> None:
    top = {p.name for p in SERVICE.iterdir() if p.name != "__pycache__"}
    # grpc/ is a transport beside HTTP (like app.py, it maps calls onto the sub-packages).
    transports = {"grpc"}
    assert top == {
        "__init__.py",
        "app.py",
        "runtime.py",
        "errors.py",
        "responses.py",
        # A person's records span every sub-package's tables; exported and erased in one
        # place, as the assembler wires them (kernel/personal.py).
        "personal.py",
        *SUBPACKAGES,
        *transports,
    }
    for name, extra in SUBPACKAGES.items():
        files = {p.name for p in (SERVICE / name).glob("*.py")}
        assert files == CONTRACT | extra, name


@pytest.mark.parametrize("name", sorted(SUBPACKAGES))
def test_endpoints_hold_no_queries_nor_tables(name: str) -> None:
    for imported in _all_imports(SERVICE / name / "endpoints.py"):
        assert not imported.startswith("sqlalchemy"), imported
        assert not imported.endswith((".repository", ".models")), imported


@pytest.mark.parametrize("name", sorted(SUBPACKAGES))
def test_services_and_repositories_know_nothing_of_http(name: str) -> None:
    for module in ("service.py", "repository.py"):
        for imported in _all_imports(SERVICE / name / module):
            assert not imported.startswith(HTTP), f"{name}/{module} imports {imported}"


def test_siblings_meet_through_services_schemas_and_models_only() -> None:
    crossings = []
    for path in sorted(SERVICE.rglob("*.py")):
        module = _module_name(path)
        parts = module.split(".")
        if len(parts) < 5:
            continue  # app.py and runtime.py assemble; errors.py and responses.py serve
        own = parts[3]
        for imported in _all_imports(path):
            target = imported.split(".")
            if target[:3] != PACKAGE.split(".") or len(target) < 4:
                continue
            if target[3] == "app" or (
                len(target) > 4 and target[3] != own and target[4] in ("endpoints", "repository")
            ):
                crossings.append(f"{module} -> {imported}")
    assert crossings == []
