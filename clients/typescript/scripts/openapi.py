"""Write the platform's merged OpenAPI document, as the gateway serves it at ``/openapi.json``.

The embedded platform is built in-process (every service, behind its gateway) on a
throw-away SQLite database, its lifespan run, and ``GET /openapi.json`` asked through an
in-process transport: no port, no server, nothing left behind. The SDK's types
(``src/schema.d.ts``) are generated from this file by ``npm run generate``.

    python clients/typescript/scripts/openapi.py [OUTPUT]
    # OUTPUT defaults to clients/typescript/openapi.json
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from pydantic import SecretStr

from orchestrion.migrations import upgrade
from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings

PACKAGE = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = PACKAGE / "openapi.json"


def _settings(directory: Path) -> Settings:
    """Settings isolated from the environment and any ``.env`` file, as the tests' are."""
    url = f"sqlite+aiosqlite:///{directory / 'openapi.db'}"
    values: dict[str, Any] = {
        "environment": "test",
        "data_dir": directory / "data",
        "admin_email": "admin@example.com",
        "admin_password": SecretStr("openapi-document-password-1"),
        "secret_key": SecretStr("openapi-document-secret-0123456789"),
        "database": {"url": url},
    }
    return Settings(_env_file=None, **values)


async def _fetch(settings: Settings) -> dict[str, Any]:
    application = create_embedded_app(settings)
    async with LifespanManager(application, startup_timeout=60) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            response = await http.get("/openapi.json")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def openapi_document() -> dict[str, Any]:
    """The merged document the gateway serves (call it outside a running event loop)."""
    with tempfile.TemporaryDirectory(prefix="orchestrion-openapi-") as directory:
        settings = _settings(Path(directory))
        upgrade(settings.database_url)
        return asyncio.run(_fetch(settings))


def render(document: dict[str, Any]) -> str:
    """The document as written to disk: stable key order, so regenerating is reproducible."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def write(output: Path) -> Path:
    """Write the document to ``output`` and return it."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(openapi_document()), encoding="utf-8")
    return output


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else DEFAULT_OUTPUT
    print(write(output))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
