"""Ingest: every format sniffed from its bytes and read, limits, and refusals."""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest

from tests.services.content.conftest import MAX_BYTES
from tests.services.content.helpers import BASE, add_text, docx_bytes, pdf_bytes, settled, upload

PARAGRAPH = (
    "Photosynthesis is the process by which green plants convert sunlight into chemical "
    "energy. Chlorophyll absorbs light in the chloroplasts."
)


async def _text(client, headers, content_id: str) -> str:
    response = await client.get(f"{BASE}/{content_id}/text", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_a_pdf_named_bin_is_a_pdf(client, admin_headers) -> None:
    body = await upload(client, admin_headers, pdf_bytes(PARAGRAPH), filename="report.bin")
    assert body["content_type"] == "application/pdf"
    assert body["status"] == "processed"
    assert body["title"] == "report.bin"
    assert len(body["sha256"]) == 64
    text = await _text(client, admin_headers, body["id"])
    assert "Photosynthesis" in text
    assert "chloroplasts" in text
    assert body["analysis"]["language"] == "en"


async def test_an_encrypted_pdf_is_a_422(client, admin_headers) -> None:
    body = await upload(client, admin_headers, pdf_bytes(PARAGRAPH, password="secret"), expect=422)
    assert "encrypted" in body["detail"]
    listed = await client.get(BASE, headers=admin_headers)
    assert listed.json()["meta"]["total"] == 0  # nothing stored


async def test_docx_and_its_title(client, admin_headers) -> None:
    data = docx_bytes(["First paragraph about rivers.", PARAGRAPH], title="Rivers")
    body = await upload(client, admin_headers, data, filename="x")
    assert body["content_type"].endswith("wordprocessingml.document")
    assert body["title"] == "x"
    assert (await settled(client, admin_headers, body["id"]))["status"] == "processed"
    text = await _text(client, admin_headers, body["id"])
    assert text.startswith("First paragraph about rivers.")


def _zip_bomb() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:document>" + b" " * 20_000_000)
    return out.getvalue()


def _lying_zip_bomb() -> bytes:
    """A bomb whose member claims a tiny uncompressed size."""
    data = bytearray(_zip_bomb())
    # Rewrite the declared sizes (local header and central directory) to 100 bytes.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = 0
        while (at := data.find(signature, at)) != -1:
            data[at + offset : at + offset + 4] = (100).to_bytes(4, "little")
            at += 4
    return bytes(data)


@pytest.mark.parametrize("bomb", [_zip_bomb, _lying_zip_bomb])
async def test_a_zip_bomb_docx_is_refused(client, admin_headers, bomb) -> None:
    data = bomb()
    assert len(data) < MAX_BYTES
    body = await upload(client, admin_headers, data, expect=422)
    assert body["status"] == 422


async def test_xml_and_billion_laughs(client, admin_headers) -> None:
    xml = b'<?xml version="1.0"?><library><book>Rivers of Europe</book><book>Alps</book></library>'
    body = await upload(client, admin_headers, xml, filename="a.txt")
    assert body["content_type"] == "application/xml"
    assert (await _text(client, admin_headers, body["id"])).split("\n") == [
        "Rivers of Europe",
        "Alps",
    ]
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b"<lolz>&lol3;</lolz>"
    )
    refused = await upload(client, admin_headers, laughs, expect=422)
    assert refused["status"] == 422


async def test_html_drops_scripts_and_styles(client, admin_headers) -> None:
    html = (
        "<html><head><title>Plants</title><style>p { color: red }</style></head><body>"
        "<script>alert('x')</script><h1>Leaves</h1><p>Green leaves make food.</p></body></html>"
    )
    body = await upload(client, admin_headers, html.encode(), filename="page.pdf")
    assert body["content_type"] == "text/html"
    assert body["title"] == "page.pdf"
    text = await _text(client, admin_headers, body["id"])
    assert "Green leaves make food." in text
    assert "Leaves" in text
    assert "alert" not in text
    assert "color" not in text
    untitled = await client.post(BASE, json={"html": html}, headers=admin_headers)
    assert untitled.json()["title"] == "Plants"


async def test_json_markdown_and_text(client, admin_headers) -> None:
    doc = {"name": "Mont Blanc", "facts": ["highest peak of the Alps", 4808]}
    body = await upload(client, admin_headers, json.dumps(doc).encode())
    assert body["content_type"] == "application/json"
    assert await _text(client, admin_headers, body["id"]) == "Mont Blanc\nhighest peak of the Alps"
    markdown = "# Title\n\nSome **bold** text and a [link](http://x.org).\n\n- one\n- two\n"
    body = await upload(client, admin_headers, markdown.encode(), filename="notes.txt")
    assert body["content_type"] == "text/markdown"
    text = await _text(client, admin_headers, body["id"])
    assert "**" not in text
    assert "http://x.org" not in text
    assert "Some bold text and a link." in text
    body = await add_text(client, admin_headers, "Just words.", title="Plain", tags=["a", "b"])
    assert (body["content_type"], body["title"], body["tags"]) == (
        "text/plain",
        "Plain",
        ["a", "b"],
    )


async def test_unsupported_and_garbage_never_500(client, admin_headers) -> None:
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(200)
    assert (await upload(client, admin_headers, png, expect=415))["status"] == 415
    junk = bytes(range(256)) * 40
    assert (await upload(client, admin_headers, junk, expect=415))["status"] == 415
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("a.txt", "hello")
    await upload(client, admin_headers, plain_zip.getvalue(), expect=415)
    rng = __import__("random").Random(7)
    for prefix in (b"%PDF-1.7\n", b"PK\x03\x04", b"<?xml ", b"{", b"<html>", b""):
        for _ in range(5):
            data = prefix + rng.randbytes(rng.randrange(1, 3000))
            response = await client.post(BASE, files={"file": ("x", data)}, headers=admin_headers)
            assert response.status_code in (201, 415, 422), (prefix, response.text)
            assert response.headers["content-type"] != "text/html"


async def test_too_large_is_413(client, admin_headers) -> None:
    big = b"a" * (MAX_BYTES + 1)
    body = await upload(client, admin_headers, big, expect=413)
    assert "content.max_bytes" in body["detail"]
    raw = await client.post(
        BASE, content=big, headers={**admin_headers, "content-type": "text/plain"}
    )
    assert raw.status_code == 413
    as_json = await client.post(BASE, json={"text": "b" * (MAX_BYTES + 1)}, headers=admin_headers)
    assert as_json.status_code == 413


async def test_bad_requests_are_422(client, admin_headers) -> None:
    both = await client.post(BASE, json={"text": "a", "html": "b"}, headers=admin_headers)
    assert both.status_code == 422
    empty = await client.post(BASE, json={"text": "   "}, headers=admin_headers)
    assert empty.status_code == 422
    no_file = await client.post(
        BASE, data={"title": "x"}, files={"other": ("a", b"b")}, headers=admin_headers
    )
    assert no_file.status_code == 422


async def test_large_documents_are_processed_by_the_worker(client, admin_headers) -> None:
    text = (PARAGRAPH + "\n\n") * 200  # past inline_max_bytes
    body = await add_text(client, admin_headers, text, title="Long")
    assert body["status"] == "processing"
    assert body["analysis"] is None
    pending = await client.get(f"{BASE}/{body['id']}/text", headers=admin_headers)
    assert pending.status_code in (200, 409)
    done = await settled(client, admin_headers, body["id"])
    assert done["status"] == "processed", done
    assert done["analysis"]["word_count"] == 200 * len(PARAGRAPH.split())


async def test_a_large_corrupt_document_fails_off_the_request_path(client, admin_headers) -> None:
    data = b"%PDF-1.4\n" + b"garbage " * 5000
    body = await upload(client, admin_headers, data)
    assert body["status"] == "processing"
    done = await settled(client, admin_headers, body["id"])
    assert done["status"] == "failed"
    assert "corrupt" in done["error"] or "PDF" in done["error"]
