"""Text out of a document of a known type, within limits: :func:`extract`.

CPU work, synchronous: callers run it in a thread. Every parser failure becomes an
:class:`UnreadableDocument` (a 422, or ``failed`` with its reason), never anything else.

Hostile input is bounded before it is read:

- DOCX is a ZIP: the members' declared uncompressed sizes, then the bytes actually
  inflated while reading each one, are counted against :attr:`Limits.unzipped` (a zip
  bomb declares small sizes and inflates to gigabytes; both are checked).
- XML goes through defusedxml with DTDs forbidden: no entity expansion (billion
  laughs), no external entities.
- HTML drops ``script``, ``style``, ``noscript`` and ``template`` elements.
- Text past :attr:`Limits.max_chars` fails the document rather than fill the database.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from typing import Any

from orchestrion.services.content import formats
from orchestrion.services.content.errors import UnreadableDocument

_READ = 64 * 1024
MIN_UNZIPPED = 8 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """How much one document may yield: characters of text, bytes inflated from a ZIP."""

    max_chars: int
    unzipped: int

    @classmethod
    def of(cls, *, max_bytes: int, max_extracted_chars: int) -> Limits:
        """The limits of the content settings: a DOCX may inflate to its own size plus
        four bytes of markup per character of text allowed, and at least
        :data:`MIN_UNZIPPED` (an empty Word document already holds most of a megabyte
        of styles and themes)."""
        return cls(
            max_chars=max_extracted_chars,
            unzipped=max(MIN_UNZIPPED, max_bytes + 4 * max_extracted_chars),
        )


@dataclass(frozen=True)
class Extracted:
    """A document's text, and a title found inside it (HTML ``<title>``, DOCX core)."""

    text: str
    title: str | None = None


def _too_much(limits: Limits) -> UnreadableDocument:
    return UnreadableDocument(
        f"the document holds more than {limits.max_chars} characters of text "
        "(content.max_extracted_chars)"
    )


def _capped(text: str, limits: Limits) -> str:
    if len(text) > limits.max_chars:
        raise _too_much(limits)
    return text


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def extract(data: bytes, content_type: str, limits: Limits) -> Extracted:
    """The text of ``data`` read as ``content_type``; 422 when it cannot be read."""
    try:
        if content_type == formats.PDF:
            return _pdf(data, limits)
        if content_type == formats.DOCX:
            return _docx(data, limits)
        text = formats.decode_text(data)
        if text is None:
            raise UnreadableDocument("the document is not valid UTF-8 text")
        return extract_text(text, content_type, limits)
    except UnreadableDocument:
        raise
    except RecursionError:
        raise UnreadableDocument("the document is nested too deeply to read") from None
    except MemoryError:
        raise UnreadableDocument("the document needs too much memory to read") from None
    except Exception as exc:
        raise UnreadableDocument(
            f"the document is corrupt or not a valid {content_type} file ({type(exc).__name__})"
        ) from None


def extract_text(text: str, content_type: str, limits: Limits) -> Extracted:
    """The text of a textual document (plain, Markdown, HTML, JSON, XML)."""
    # Markup shrinks when stripped; text four times the limit cannot fit it.
    if len(text) > 4 * limits.max_chars:
        raise _too_much(limits)
    if content_type == formats.HTML:
        return _html(text, limits)
    if content_type == formats.XML:
        return Extracted(_capped(_normalise(_xml(text)), limits))
    if content_type == formats.JSON:
        return Extracted(_capped(_normalise(_json(text)), limits))
    if content_type == formats.MARKDOWN:
        return Extracted(_capped(_normalise(markdown_to_text(text)), limits))
    return Extracted(_capped(_normalise(text), limits))


def _pdf(data: bytes, limits: Limits) -> Extracted:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise UnreadableDocument("the PDF is encrypted; upload it without a password")
    parts: list[str] = []
    size = 0
    for page in reader.pages:
        page_text = page.extract_text() or ""
        size += len(page_text)
        if size > limits.max_chars:
            raise _too_much(limits)
        parts.append(page_text)
    title = None
    if reader.metadata is not None and reader.metadata.title:
        title = str(reader.metadata.title)
    return Extracted(_capped(_normalise("\n\n".join(parts)), limits), title)


def _safe_docx_bytes(data: bytes, limits: Limits) -> bytes:
    """The DOCX rebuilt from members read within the inflation limit (a zip bomb fails)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        declared = sum(member.file_size for member in members)
        if declared > limits.unzipped:
            raise UnreadableDocument(
                f"the DOCX declares {declared} bytes uncompressed, more than the "
                f"{limits.unzipped} allowed (a decompression bomb?)"
            )
        rebuilt = io.BytesIO()
        inflated = 0
        with zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_STORED) as copy:
            for member in members:
                chunks: list[bytes] = []
                with archive.open(member) as stream:
                    while block := stream.read(_READ):
                        inflated += len(block)
                        if inflated > limits.unzipped:
                            raise UnreadableDocument(
                                f"the DOCX inflates past the {limits.unzipped} bytes allowed "
                                "(a decompression bomb?)"
                            )
                        chunks.append(block)
                copy.writestr(member.filename, b"".join(chunks))
    return rebuilt.getvalue()


def _docx(data: bytes, limits: Limits) -> Extracted:
    import docx

    document = docx.Document(io.BytesIO(_safe_docx_bytes(data, limits)))
    parts: list[str] = []
    size = 0
    for paragraph in document.paragraphs:
        parts.append(paragraph.text)
        size += len(paragraph.text) + 1
        if size > limits.max_chars:
            raise _too_much(limits)
    for table in document.tables:
        for row in table.rows:
            line = "\t".join(cell.text for cell in row.cells)
            parts.append(line)
            size += len(line) + 1
            if size > limits.max_chars:
                raise _too_much(limits)
    title = document.core_properties.title or None
    return Extracted(_capped(_normalise("\n".join(parts)), limits), title)


def _xml(text: str) -> str:
    from defusedxml import ElementTree

    # forbid_dtd refuses any DOCTYPE: no entity tricks, internal or external.
    root = ElementTree.fromstring(
        text.encode(), forbid_dtd=True, forbid_entities=True, forbid_external=True
    )
    return "\n".join(part.strip() for part in root.itertext() if part.strip())


def _json(text: str) -> str:
    lines: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and value.strip():
            lines.append(value.strip())

    walk(json.loads(text))
    return "\n".join(lines)


_DROPPED = ["script", "style", "noscript", "template", "svg", "iframe", "object"]
# Elements that end a line of text (inline ones, like <b>, do not).
_BLOCKS = (
    "p,div,h1,h2,h3,h4,h5,h6,li,br,tr,section,article,blockquote,pre,table,ul,ol,"
    "header,footer,nav,aside,dt,dd,figcaption,hr"
)


def _html(text: str, limits: Limits) -> Extracted:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else None
    tree.strip_tags(_DROPPED)
    for node in tree.css(_BLOCKS):
        node.insert_after("\n")
    body = tree.body or tree.root
    extracted = body.text(separator="", strip=False) if body is not None else ""
    extracted = "\n".join(" ".join(line.split()) for line in extracted.split("\n"))
    return Extracted(_capped(_normalise(extracted), limits), title or None)


_MD_RULES = (
    (re.compile(r"^```[^\n]*$", re.M), ""),  # fence lines (the code stays)
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # images: their alt text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links: their text
    (re.compile(r"^#{1,6}\s+", re.M), ""),  # heading marks
    (re.compile(r"^\s*>\s?", re.M), ""),  # quote marks
    (re.compile(r"^\s*[-*+]\s+", re.M), ""),  # bullets
    (re.compile(r"(\*\*|__)(.+?)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)\*(?!\w)"), r"\1"),  # emphasis
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
    (re.compile(r"^\s*([-*_]\s*){3,}$", re.M), ""),  # rules
    (re.compile(r"<[^>\n]+>"), ""),  # inline HTML tags
)


def markdown_to_text(text: str) -> str:
    """Markdown without its marks: headings, emphasis, links and images as their text."""
    for pattern, replacement in _MD_RULES:
        text = pattern.sub(replacement, text)
    return text
