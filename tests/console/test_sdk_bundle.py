"""The console ships the SDK as one browser module, ``static/vendor/sdk.js``, bundled by
esbuild from ``clients/typescript`` (``npm run build:console``; ``make sdk`` runs it).
The committed bundle must be what the SDK's sources build today."""

from __future__ import annotations

from pathlib import Path

from tests.test_typescript_sdk import PACKAGE, _run, npm_installed

__all__ = ["npm_installed"]
BUNDLE = (
    Path(__file__).resolve().parents[2] / "src/orchestrion/gateway/console/static/vendor/sdk.js"
)


def test_the_committed_console_bundle_is_current(npm_installed: str, tmp_path: Path) -> None:
    built = tmp_path / "sdk.js"
    done = _run(npm_installed, "run", "build:console", CONSOLE_OUT=str(built))
    assert done.returncode == 0, f"npm run build:console failed:\n{done.stdout}\n{done.stderr}"
    assert built.read_text() == BUNDLE.read_text(), (
        "the console's SDK bundle is stale: run `make sdk` (or `npm run build:console` in "
        "clients/typescript) and commit src/orchestrion/gateway/console/static/vendor/sdk.js"
    )


def test_the_bundle_is_self_contained_browser_code() -> None:
    """No import left to resolve (the console has no module map) and nothing from Node."""
    text = BUNDLE.read_text()
    assert "\nimport " not in text
    assert "require(" not in text
    assert "export {" in text
    assert PACKAGE.joinpath("package.json").read_text().count('"build:console"') == 1
