"""Helpers for content tests: upload documents, wait for processing, make files."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import httpx

BASE = "/api/v1/content"


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    *,
    filename: str = "document.bin",
    expect: int = 201,
    **fields: str,
) -> dict[str, Any]:
    """POST ``data`` as a multipart file; the body (status checked against ``expect``)."""
    response = await client.post(
        BASE, files={"file": (filename, data)}, data=fields, headers=headers
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


async def add_text(
    client: httpx.AsyncClient, headers: dict[str, str], text: str, **fields: Any
) -> dict[str, Any]:
    """POST a JSON ``text`` document; its body."""
    response = await client.post(BASE, json={"text": text, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def settled(
    client: httpx.AsyncClient, headers: dict[str, str], content_id: str
) -> dict[str, Any]:
    """The document once it is no longer ``processing`` (bounded wait, not a timing test)."""
    for _ in range(600):
        response = await client.get(f"{BASE}/{content_id}", headers=headers)
        body: dict[str, Any] = response.json()
        if body["status"] != "processing":
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"content {content_id} is still processing")


def pdf_bytes(text: str, *, pages: int = 1, password: str | None = None) -> bytes:
    """A PDF holding ``text`` on each page (encrypted with ``password`` if given)."""
    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter

    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    data = bytes(pdf.output())
    if password is None:
        return data
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(paragraphs: list[str], *, title: str | None = None) -> bytes:
    """A DOCX of ``paragraphs``."""
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()
