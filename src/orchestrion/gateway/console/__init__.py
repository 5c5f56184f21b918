"""The web console: static HTML, ES modules and CSS, served by the gateway.

No Node at run time: the files under ``static/`` ship in the package as they are and are
served from memory; ``static/vendor/sdk.js`` is the TypeScript SDK bundled for the
browser (``npm run build:console`` in ``clients/typescript``, committed). ``/`` and the
console's own deep links (``/workflows/<id>``, ``/executions/<id>``...) answer
``index.html``; the assets live under ``/console/``.
Every console answer carries a strict Content-Security-Policy: scripts and styles come
from this origin only, nothing inline, no framing.
"""

from __future__ import annotations

import hashlib
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from orchestrion.kernel.errors import MethodNotAllowed, NotFound

ASSET_PREFIX = "/console/"
#: First path segments the console answers with ``index.html`` (its client-side routes).
PAGES = frozenset(
    {
        "sign-in",
        "workflows",
        "executions",
        "usage",
        "analytics",
        "notifications",
        "content",
        "knowledge",
        "templates",
    }
)
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _load() -> dict[str, bytes]:
    """Every file of ``static/`` by its name relative to it."""
    found: dict[str, bytes] = {}
    root = resources.files(__package__) / "static"

    def walk(node: resources.abc.Traversable, prefix: str) -> None:
        for child in node.iterdir():
            if child.is_dir():
                walk(child, f"{prefix}{child.name}/")
            elif child.name.rsplit(".", 1)[-1] in {"html", "js", "css", "svg", "png"}:
                found[prefix + child.name] = child.read_bytes()

    walk(root, "")
    return found


class Console:
    """Answers the console's paths; everything else is left to the gateway's routes."""

    def __init__(self) -> None:
        self.files = _load()
        self.etags = {
            name: '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            for name, body in self.files.items()
        }

    def handles(self, path: str) -> bool:
        """Whether ``path`` is the console's (the root, an asset or a page)."""
        if path == "/" or path.startswith(ASSET_PREFIX):
            return True
        first = path.lstrip("/").split("/", 1)[0]
        return first in PAGES

    async def __call__(self, request: Request) -> Response:
        """The asset asked for, or ``index.html`` for a page."""
        path = request.url.path
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed(
                f"{path} answers GET and HEAD only", headers={"Allow": "GET, HEAD"}
            )
        name = path.removeprefix(ASSET_PREFIX) if path.startswith(ASSET_PREFIX) else "index.html"
        body = self.files.get(name)
        if body is None:
            raise NotFound(f"no console file at {path}")
        etag = self.etags[name]
        headers = {**_HEADERS, "ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        suffix = "." + name.rsplit(".", 1)[-1]
        media = _TYPES.get(suffix, "application/octet-stream")
        return Response(
            b"" if request.method == "HEAD" else body,
            media_type=media,
            headers={**headers, "Content-Length": str(len(body))},
        )
