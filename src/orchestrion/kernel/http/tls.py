"""One TLS context per process for outgoing HTTPS.

httpx builds a context for every client and transport it makes, loading the whole CA
bundle each time (tens to hundreds of milliseconds apiece: a platform makes a dozen at
start-up). Every client of ours shares this one instead, with the same trust as httpx's
default (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set, else certifi's bundle). An
``SSLContext`` is safe to share across clients and threads once built.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The process's TLS client context (built on first use)."""
    return httpx.create_ssl_context()
