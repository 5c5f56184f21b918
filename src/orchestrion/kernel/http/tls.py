"""One TLS context per process and purpose for outgoing HTTPS.

httpx builds a context for every client and transport it makes, loading the whole CA
bundle each time (tens to hundreds of milliseconds apiece: a platform makes a dozen at
start-up). Every client of ours shares one instead. An ``SSLContext`` is safe to share
across clients and threads once built.

Two purposes, never mixed:

- :func:`client_context` for the outside world (``http`` steps, providers, webhooks):
  the same trust as httpx's default (``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set,
  else certifi's bundle), and no client certificate;
- :func:`internal_context` for calls between the platform's own processes under mutual
  TLS: only the platform's CA is trusted, and the process's certificate is presented.
  A client certificate never goes to a third party, and a public CA's certificate never
  passes for one of the platform's services.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def client_context() -> ssl.SSLContext:
    """The process's TLS client context for the outside world (built on first use)."""
    return httpx.create_ssl_context()


@functools.cache
def internal_context(*, ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    """The process's context for calls to the platform's services: the server's
    certificate must be signed by ``ca_file`` and name the host called; ``cert_file``
    (with ``key_file``) is presented as the client certificate.

    Built once per set of files; an unreadable file raises here, at start-up, rather
    than on the first call.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context
