"""The layering rules of ARCHITECTURE.md, checked on the source's imports.

``kernel`` imports nothing above it; ``engine`` only the kernel; a service never imports
another service nor the gateway, and knows the engine only through its facade
(``orchestrion.engine``, never its internals); the settings never import the engine; the
gateway never imports a service nor the engine (it knows services only as upstreams;
``orchestrion.platform`` composes them).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "orchestrion"


def _module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, root: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                found.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.append(node.module)
    return [name for name in found if name == "orchestrion" or name.startswith("orchestrion.")]


def _allowed(module: str, imported: str) -> bool:
    parts = module.split(".")
    layer = parts[1] if len(parts) > 1 else ""
    if layer == "kernel":
        return imported.startswith("orchestrion.kernel")
    if layer == "engine":
        return imported.startswith(("orchestrion.kernel", "orchestrion.engine"))
    if layer == "services" and len(parts) > 2:
        own = f"orchestrion.services.{parts[2]}"
        if imported.startswith("orchestrion.services.") and not imported.startswith(own):
            return False
        if imported.startswith("orchestrion.engine."):
            return False  # the facade only
        return not imported.startswith("orchestrion.gateway")
    if layer == "settings":
        return not imported.startswith("orchestrion.engine")
    if layer == "gateway":
        return not imported.startswith(("orchestrion.services", "orchestrion.engine"))
    return True


def violations(root: Path = SRC) -> list[str]:
    """Every import that crosses a boundary, as ``module -> imported``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(path, root)
        found.extend(
            f"{module} -> {name}" for name in _imports(path, root) if not _allowed(module, name)
        )
    return found


def test_no_layer_imports_above_itself() -> None:
    assert violations() == []


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("orchestrion.kernel.db.base", "orchestrion.settings", False),
        ("orchestrion.kernel.db.base", "orchestrion.kernel.ids", True),
        ("orchestrion.engine.definition", "orchestrion.services.workflows", False),
        ("orchestrion.services.auth.service", "orchestrion.services.workflows.models", False),
        ("orchestrion.services.auth.service", "orchestrion.services.auth.models", True),
        ("orchestrion.services.auth.app", "orchestrion.gateway.app", False),
        ("orchestrion.gateway.app", "orchestrion.services.auth", False),
        ("orchestrion.platform", "orchestrion.services.auth.app", True),
        ("orchestrion.services.workflows.app", "orchestrion.engine", True),
        ("orchestrion.services.workflows.app", "orchestrion.engine.runtime", False),
        ("orchestrion.services.workflows.llm.backend", "orchestrion.engine.llm.backend", False),
        ("orchestrion.settings", "orchestrion.engine", False),
        ("orchestrion.settings", "orchestrion.kernel.mcp_config", True),
        ("orchestrion.gateway.app", "orchestrion.engine", False),
    ],
)
def test_rules_catch_crossings(module: str, imported: str, allowed: bool) -> None:
    assert _allowed(module, imported) is allowed


def test_checker_sees_a_real_crossing(tmp_path: Path) -> None:
    package = tmp_path / "orchestrion" / "kernel"
    package.mkdir(parents=True)
    (package / "bad.py").write_text("from orchestrion.services.auth import models\n")
    assert violations(tmp_path / "orchestrion") == [
        "orchestrion.kernel.bad -> orchestrion.services.auth"
    ]
