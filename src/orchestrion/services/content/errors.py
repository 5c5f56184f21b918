"""Errors of the content service.

Exception tree::

    NotFound (404)
    └── ContentNotFound
    ValidationFailed (422)
    ├── UnreadableDocument     corrupt, encrypted, or past an extraction limit
    └── SearchUnavailable      a search mode this installation cannot serve
    PayloadTooLarge (413)
    └── DocumentTooLarge       past ``content.max_bytes``
    OrchestrionError
    └── UnsupportedType (415)  bytes of no type the service reads
"""

from __future__ import annotations

from orchestrion.kernel.errors import NotFound, OrchestrionError, PayloadTooLarge, ValidationFailed


class ContentNotFound(NotFound):
    """No such document in the caller's tenant."""


class UnreadableDocument(ValidationFailed):
    """The document's type is known but its text cannot be taken out of it."""

    title = "Unreadable document"


class SearchUnavailable(ValidationFailed):
    """The search mode needs embeddings this installation does not have."""


class DocumentTooLarge(PayloadTooLarge):
    """The document is larger than ``content.max_bytes``."""


class UnsupportedType(OrchestrionError):
    """The bytes are of no type the service reads (an image, an archive, binary junk)."""

    status_code = 415
