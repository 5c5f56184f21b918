"""Documents for ``bench.content``: seeded English prose written out in every format.

The prose is built from sentence parts around one topic per document, so keywords
repeat as in real writing, with names, places and dates for the entity rules, headings
and lists for the structure each format carries. Sizes are spread log-uniformly between
``low`` and ``high`` characters of text.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from orchestrion.services.content import formats

TOPICS = {
    "rivers": ["river delta", "flood plain", "water level", "sediment load", "wetland birds"],
    "energy": ["solar panel", "grid storage", "wind farm", "power demand", "battery cost"],
    "medicine": ["clinical trial", "blood pressure", "patient record", "side effect", "dosage"],
    "cities": ["city council", "bus network", "housing market", "public park", "street light"],
    "software": ["code review", "test suite", "release cycle", "memory leak", "build server"],
    "farming": ["crop rotation", "soil quality", "harvest season", "irrigation", "seed bank"],
}
PEOPLE = ["Marie Dupont", "James Okafor", "Elena Petrova", "Hiroshi Tanaka", "Ana Souza"]
PLACES = ["Lisbon", "Nairobi", "Toronto", "Osaka", "Hamburg", "Melbourne", "Lyon"]
ORGS = ["Northwind Institute", "Acme Corporation", "the World Health Organization"]
VERBS = ["measured", "described", "changed", "improved", "questioned", "reviewed", "mapped"]
OPENERS = [
    "Over the last decade",
    "According to the latest report",
    "In the first survey",
    "After a long winter",
    "During the spring of 2021",
    "For most of the year",
]
CLOSERS = [
    "which surprised many observers",
    "and the results were published on 12 March 2022",
    "although the data remained incomplete",
    "because the budget had been cut",
    "as the team had predicted",
    "while costs rose by 14 percent",
]


def sentence(rng: random.Random, terms: list[str]) -> str:
    """One sentence about the topic's terms."""
    who = rng.choice([*PEOPLE, *ORGS, f"the {rng.choice(terms)} team"])
    parts = [
        rng.choice(OPENERS),
        f"{who} {rng.choice(VERBS)} the {rng.choice(terms)} near {rng.choice(PLACES)}",
    ]
    if rng.random() < 0.6:
        parts.append(f"{rng.choice(CLOSERS)}, and the {rng.choice(terms)} mattered most")
    return ", ".join(parts) + "."


def prose(rng: random.Random, chars: int, topic: str | None = None) -> list[list[str]]:
    """Sections (a heading, then paragraphs) of about ``chars`` characters."""
    name = topic or rng.choice(sorted(TOPICS))
    terms = TOPICS[name]
    sections: list[list[str]] = []
    size = 0
    while size < chars:
        section = [f"{rng.choice(terms).title()} in {rng.choice(PLACES)}"]
        for _ in range(rng.randint(2, 5)):
            paragraph = " ".join(sentence(rng, terms) for _ in range(rng.randint(3, 7)))
            section.append(paragraph)
            size += len(paragraph)
        sections.append(section)
    return sections


def _text(sections: list[list[str]]) -> bytes:
    return "\n\n".join("\n\n".join(s) for s in sections).encode()


def _markdown(sections: list[list[str]]) -> bytes:
    out = []
    for heading, *paragraphs in sections:
        out.append(f"## {heading}")
        out.extend(p.replace(" the ", " the **", 1).replace(" near", "** near", 1)
                   for p in paragraphs[:-1])  # fmt: skip
        out.append(f"- {paragraphs[-1]}\n- see [the report](https://example.org/report)")
    return ("# Field notes\n\n" + "\n\n".join(out)).encode()


def _html(sections: list[list[str]]) -> bytes:
    body = []
    for heading, *paragraphs in sections:
        body.append(f"<h2>{escape(heading)}</h2>")
        body.extend(f"<p class='text'>{escape(p)}</p>" for p in paragraphs[:-1])
        body.append(f"<ul><li>{escape(paragraphs[-1])}</li></ul>")
    return (
        "<!DOCTYPE html><html><head><title>Field notes</title>"
        "<style>p { margin: 0 }</style><script>var tracking = 1;</script></head>"
        "<body><nav><a href='/'>Home</a></nav><article>" + "\n".join(body) + "</article>"
        "<footer>Contact us</footer></body></html>"
    ).encode()


def _json(sections: list[list[str]]) -> bytes:
    document = {
        "title": "Field notes",
        "version": 3,
        "sections": [
            {"heading": h, "order": i, "paragraphs": ps} for i, (h, *ps) in enumerate(sections)
        ],
    }
    return json.dumps(document, indent=2).encode()


def _xml(sections: list[list[str]]) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<article lang="en">']
    for i, (heading, *paragraphs) in enumerate(sections):
        out.append(f'<section n="{i}"><heading>{escape(heading)}</heading>')
        out.extend(f"<para>{escape(p)}</para>" for p in paragraphs)
        out.append("</section>")
    out.append("</article>")
    return "\n".join(out).encode()


def _pdf(sections: list[list[str]]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_title("Field notes")
    pdf.add_page()
    for heading, *paragraphs in sections:
        pdf.set_font("Helvetica", "B", 14)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    return bytes(pdf.output())


def _docx(sections: list[list[str]]) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Field notes"
    for heading, *paragraphs in sections:
        document.add_heading(heading, level=2)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            cell.text = f"cell {r}.{c}"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


WRITERS: dict[str, Callable[[list[list[str]]], bytes]] = {
    formats.TEXT: _text,
    formats.MARKDOWN: _markdown,
    formats.HTML: _html,
    formats.JSON: _json,
    formats.XML: _xml,
    formats.PDF: _pdf,
    formats.DOCX: _docx,
}
#: Short names of the formats, in table order.
FORMATS = {
    "text": formats.TEXT,
    "markdown": formats.MARKDOWN,
    "html": formats.HTML,
    "json": formats.JSON,
    "xml": formats.XML,
    "pdf": formats.PDF,
    "docx": formats.DOCX,
}


@dataclass(frozen=True)
class Document:
    """Generated bytes, and the characters of prose they hold."""

    data: bytes
    chars: int


def generate_documents(
    content_type: str, count: int, *, low: int = 3_000, high: int = 100_000, seed: int = 14
) -> list[Document]:
    """``count`` documents of one format, from ``low`` to ``high`` characters of prose."""
    rng = random.Random(f"{seed}-{content_type}")
    out = []
    for i in range(count):
        fraction = i / (count - 1) if count > 1 else 0.0
        chars = int(math.exp(math.log(low) + fraction * (math.log(high) - math.log(low))))
        sections = prose(rng, chars)
        chars = sum(len(part) for section in sections for part in section)
        out.append(Document(WRITERS[content_type](sections), chars))
    return out
