"""HTTP routes of the content service: requests to service calls, nothing more."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.errors import Conflict
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.idempotency import HEADER, run_idempotent
from orchestrion.kernel.http.lists import ListPage, fetch_page, list_body, parse_list_query
from orchestrion.services.content import repository, search, service
from orchestrion.services.content.responses import problems
from orchestrion.services.content.schemas import (
    AnalyzeRequest,
    Content,
    ContentAnalysis,
    ContentCreate,
    ContentHits,
    ContentSearch,
    TextChunk,
)
from orchestrion.services.content.search import VectorCache
from orchestrion.services.content.service import ContentRuntime
from orchestrion.services.content.upload import read_upload

router = APIRouter(prefix="/api/v1/content", tags=["content"])
BASE = "/api/v1/content"

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "title": {"type": "string"},
                        "tags": {
                            "type": "string",
                            "description": "A JSON list or comma-separated tags.",
                        },
                    },
                }
            },
            "application/json": {"schema": ContentCreate.model_json_schema()},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


def _runtime(request: Request) -> ContentRuntime:
    runtime: ContentRuntime = request.app.state.content
    return runtime


def _cache(request: Request) -> VectorCache:
    cache: VectorCache = request.app.state.vectors
    return cache


@router.post(
    "",
    status_code=201,
    response_model=Content,
    responses=problems(400, 413, 415, 422),
    summary="Add a document",
    openapi_extra=_UPLOAD_BODY,
)
async def create_content(request: Request, principal: CurrentPrincipal) -> Response:
    """Multipart (`file`, `title`, `tags`), JSON (`text`, `html` or `markdown`) or the raw
    bytes. The type is read from the bytes. Small documents answer `processed`, larger
    ones `processing` (a worker finishes them)."""
    principal.require(Permission.CONTENT_WRITE)
    runtime = _runtime(request)
    upload = await read_upload(request, max_bytes=runtime.max_bytes)
    content_type = upload.content_type or await service.sniff(upload.data, runtime)
    # CPU work before the transaction: on SQLite a session holds every writer up.
    processed = (
        await service.prepare(runtime, upload.data, content_type)
        if len(upload.data) <= runtime.inline_max_bytes
        else None
    )
    payload = {
        "sha256": hashlib.sha256(upload.data).hexdigest(),
        "title": upload.title,
        "tags": upload.tags,
        "content_type": content_type,
    }
    database = request.app.state.database
    async with database.session() as session:

        async def produce() -> tuple[int, Any]:
            document = await service.ingest(
                session,
                runtime=runtime,
                principal=principal,
                data=upload.data,
                content_type=content_type,
                title=upload.title,
                tags=upload.tags,
                processed=processed,
            )
            return 201, service.to_dict(document)

        response = await run_idempotent(
            session,
            request=request,
            scope=f"{principal.tenant_id}:{principal.subject}:POST:{BASE}",
            payload=payload if request.headers.get(HEADER) is not None else None,
            produce=produce,
        )
    if response.status_code == 201:
        response.headers["Location"] = f"{BASE}/{json.loads(bytes(response.body))['id']}"
    return response


@router.get("", response_model=ListPage[Content], responses=problems(400), summary="List documents")
async def list_content(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """Documents of the caller's tenant; filters `content_type`, `status`, `tag`."""
    principal.require(Permission.CONTENT_READ)
    query = parse_list_query(request, repository.CONTENT_LIST)
    page = await fetch_page(
        session, repository.documents_of(principal.tenant_id), repository.CONTENT_LIST, query
    )
    items = [service.to_dict(d) for d in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.post(
    "/analyze", response_model=ContentAnalysis, responses=problems(422), summary="Analyse a text"
)
async def analyze(data: AnalyzeRequest, request: Request, principal: CurrentPrincipal) -> Any:
    """Language, keywords, entities, summary, readability and concepts; nothing stored."""
    principal.require(Permission.CONTENT_READ)
    return await service.analyze_text(_runtime(request), data.text)


@router.post(
    "/search", response_model=ContentHits, responses=problems(422, 503), summary="Search documents"
)
async def search_content(
    data: ContentSearch, request: Request, session: Session, principal: CurrentPrincipal
) -> Any:
    """Chunks of the caller's documents, best first: `keyword`, `semantic` or `hybrid`."""
    principal.require(Permission.CONTENT_READ)
    hits = await search.search(
        session, runtime=_runtime(request), cache=_cache(request), principal=principal,
        request=data,
    )  # fmt: skip
    return {"data": hits}


@router.get(
    "/{content_id}", response_model=Content, responses=problems(404), summary="Get a document"
)
async def get_content(
    content_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One document, with its analysis once processed, and its ETag."""
    principal.require(Permission.CONTENT_READ)
    document = await service.get(session, principal=principal, content_id=content_id)
    return resource_response(request, service.to_dict(document))


@router.delete(
    "/{content_id}",
    status_code=204,
    responses=problems(404, 412),
    summary="Delete a document",
)
async def delete_content(
    content_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Delete a document with its text, chunks and vectors; `If-Match` honoured."""
    principal.require(Permission.CONTENT_WRITE)
    document = await service.get(session, principal=principal, content_id=content_id)
    check_if_match(request, service.to_dict(document))
    await service.delete(session, runtime=_runtime(request), document=document)
    return Response(status_code=204)


def _processed_text(document: Any) -> str:
    if document.status != "processed" or document.text is None:
        raise Conflict(f"content '{document.id}' is {document.status}; it has no text yet")
    text: str = document.text
    return text


@router.get(
    "/{content_id}/text",
    response_class=PlainTextResponse,
    responses={
        **problems(404, 409),
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    },
    summary="The extracted text",
)
async def get_text(content_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """The document's extracted text (chunk offsets index into it); 409 until processed."""
    principal.require(Permission.CONTENT_READ)
    document = await service.get(session, principal=principal, content_id=content_id)
    return PlainTextResponse(_processed_text(document))


@router.get(
    "/{content_id}/chunks",
    response_model=ListPage[TextChunk],
    responses=problems(400, 404),
    summary="The chunks of a document",
)
async def get_chunks(
    content_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """The document's chunks in order, each with its offsets into the extracted text."""
    principal.require(Permission.CONTENT_READ)
    document = await service.get(session, principal=principal, content_id=content_id)
    query = parse_list_query(request, repository.CHUNK_LIST)
    page = await fetch_page(
        session, repository.chunks_of(document.id), repository.CHUNK_LIST, query
    )
    items = [
        {"index": c.chunk_index, "text": c.text, "start": c.start, "end": c.end} for c in page.rows
    ]
    return JSONResponse(list_body(request, items, query, page))
