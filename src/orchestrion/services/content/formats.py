"""What a document is, read from its bytes (never from its name): :func:`sniff`.

A name or a client's ``Content-Type`` is a claim; the bytes are evidence. ``%PDF-`` is a
PDF whatever the file is called, a ZIP holding ``word/document.xml`` is a DOCX (any other
ZIP is not a document), and text is told apart by parsing: JSON that parses, XML that
opens with a declaration or a root element, HTML by its tags, Markdown by its marks.
Bytes that are not UTF-8 (or UTF-16 with a byte-order mark) and not one of the binary
formats above are refused (415).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Final

from orchestrion.services.content.errors import UnsupportedType

TEXT: Final = "text/plain"
MARKDOWN: Final = "text/markdown"
HTML: Final = "text/html"
JSON: Final = "application/json"
XML: Final = "application/xml"
PDF: Final = "application/pdf"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TYPES: Final = (TEXT, MARKDOWN, HTML, JSON, XML, PDF, DOCX)

# Other binary formats are named in the 415 so the caller knows what was seen.
_BINARY: Final = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
    (b"\x00asm", "a WebAssembly module"),
    (b"\xd0\xcf\x11\xe0", "a legacy Office file"),
)
_HTML_START: Final = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S)
_HTML_TAGS: Final = re.compile(
    r"<(html|head|body|div|p|span|a\s|table|ul|ol|li|h[1-6]|br|script|style|meta|title)\b",
    re.I,
)
_XML_START: Final = re.compile(r"^<\?xml[\s?]|^<[A-Za-z_][\w.:-]*[\s/>]")
_MARKDOWN_MARKS: Final = (
    re.compile(r"^#{1,6}\s+\S", re.M),  # headings
    re.compile(r"^\s*[-*+]\s+\S", re.M),  # bullets
    re.compile(r"^\s*\d+\.\s+\S", re.M),  # numbered lists
    re.compile(r"^```", re.M),  # fences
    re.compile(r"\[[^\]\n]+\]\([^)\s]+\)"),  # links
    re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__"),  # strong
    re.compile(r"^>\s", re.M),  # quotes
    re.compile(r"^\|.*\|\s*$", re.M),  # tables
)
# Control characters other than tab, newline, carriage return and form feed.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def decode_text(data: bytes) -> str | None:
    """``data`` as text (UTF-8, or UTF-16 with a BOM), or None when it is not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    sample = text[:65536]
    # Text has few control characters; binary junk that happens to be UTF-8 has many.
    if sample and len(_CONTROL.findall(sample)) > max(2, len(sample) // 1000):
        return None
    return text


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return False


def _looks_like_markdown(text: str) -> bool:
    sample = text[:65536]
    return sum(1 for mark in _MARKDOWN_MARKS if mark.search(sample)) >= 2


def _parses_as_json(text: str) -> bool:
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def sniff(data: bytes) -> str:
    """The content type of ``data`` (one of :data:`TYPES`); 415 for anything else."""
    if data[:1024].find(b"%PDF-") != -1:
        return PDF
    if data.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise UnsupportedType("a ZIP archive that is not a DOCX document is not supported")
    for magic, what in _BINARY:
        if data.startswith(magic):
            raise UnsupportedType(f"the bytes are {what}, which is not a supported type")
    if _HTML_START.match(data[:4096]):
        return HTML
    text = decode_text(data)
    if text is None:
        raise UnsupportedType(
            "the bytes are neither text (UTF-8) nor a PDF or DOCX document; supported: "
            + ", ".join(TYPES)
        )
    return sniff_text(text)


def sniff_text(text: str) -> str:
    """The content type of a text: JSON, XML, HTML, Markdown or plain text."""
    head = text.lstrip()[:4096]
    if head[:1] in ("{", "[") and _parses_as_json(text):
        return JSON
    if head.startswith("<"):
        lowered = head.lower()
        if _HTML_TAGS.search(head) and (
            "<html" in lowered or "<body" in lowered or "<!doctype html" in lowered
        ):
            return HTML
        if _XML_START.match(head):
            return XML
        if _HTML_TAGS.search(head):
            return HTML
    if _looks_like_markdown(text):
        return MARKDOWN
    if _HTML_TAGS.search(head) and head.count("<") >= 3:
        return HTML
    return TEXT
