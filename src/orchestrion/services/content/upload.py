"""Read an upload without trusting its size: :func:`read_upload`.

The body is counted while it arrives and refused (413) as soon as it passes the limit,
so a client cannot make the service buffer more than ``content.max_bytes`` (plus a
little room for multipart framing). A multipart body then gives its ``file`` part and
``title``/``tags`` fields; a JSON body is :class:`ContentCreate`; any other body is the
document's bytes themselves (``curl --data-binary @report.pdf``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import Request

from orchestrion.kernel.errors import ValidationFailed, validation_errors
from orchestrion.services.content import formats
from orchestrion.services.content.errors import DocumentTooLarge
from orchestrion.services.content.schemas import ContentCreate, clean_tags

#: Room for multipart boundaries and headers on top of the document's own limit.
FRAMING = 64 * 1024
_JSON_FIELDS = (("text", formats.TEXT), ("html", formats.HTML), ("markdown", formats.MARKDOWN))


@dataclass(frozen=True)
class Upload:
    """A document as received: bytes, a type when the body named it, title and tags."""

    data: bytes
    content_type: str | None
    title: str | None
    tags: list[str]


def _too_large(limit: int) -> DocumentTooLarge:
    return DocumentTooLarge(f"the document is larger than {limit} bytes (content.max_bytes)")


async def _bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit - FRAMING)
    parts: list[bytes] = []
    size = 0
    async for block in request.stream():
        size += len(block)
        if size > limit:
            raise _too_large(limit - FRAMING)
        parts.append(block)
    return b"".join(parts)


def _tags(raw: str | None) -> list[str]:
    """Tags of a form field: a JSON list, or comma-separated."""
    if raw is None or not raw.strip():
        return []
    text = raw.strip()
    try:
        value = json.loads(text) if text.startswith("[") else text.split(",")
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("tags must be strings")
        return clean_tags(value)
    except ValueError as exc:
        raise ValidationFailed(
            str(exc), errors=[{"loc": ["body", "tags"], "msg": str(exc)}]
        ) from None


async def read_upload(request: Request, *, max_bytes: int) -> Upload:
    """The document of a create request; 413 past ``max_bytes``, 422 when malformed."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await _bounded_body(request, max_bytes + FRAMING)
    if media == "multipart/form-data":
        request._body = body  # the form parser reads the body already taken
        async with request.form(max_files=1, max_fields=20) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ValidationFailed(
                    "a multipart upload needs a 'file' part",
                    errors=[{"loc": ["body", "file"], "msg": "field required"}],
                )
            data = await upload.read()
            title = form.get("title")
            tags = form.get("tags")
            name = upload.filename or None
        return Upload(
            data=_checked(data, max_bytes),
            content_type=None,
            title=(title if isinstance(title, str) and title.strip() else name),
            tags=_tags(tags if isinstance(tags, str) else None),
        )
    if media == "application/json" or media.endswith("+json"):
        try:
            created = ContentCreate.model_validate_json(body)
            cleaned = clean_tags(created.tags)
        except ValidationError as exc:
            raise ValidationFailed(
                "request validation failed", errors=validation_errors(exc.errors())
            ) from None
        except ValueError as exc:
            raise ValidationFailed(str(exc)) from None
        for field, kind in (
            ("text", formats.TEXT),
            ("html", formats.HTML),
            ("markdown", formats.MARKDOWN),
        ):
            value = getattr(created, field)
            if value is not None:
                return Upload(_checked(value.encode(), max_bytes), kind, created.title, cleaned)
    return Upload(data=_checked(body, max_bytes), content_type=None, title=None, tags=[])


def _checked(data: bytes, max_bytes: int) -> bytes:
    if len(data) > max_bytes:
        raise _too_large(max_bytes)
    if not data.strip():
        raise ValidationFailed("the document is empty")
    return data
