"""Request and response shapes of the content service."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrion.services.content.models import TAG_LENGTH, TITLE_LENGTH

Status = Literal["processing", "processed", "failed"]
MAX_TAGS = 50
#: Largest text ``POST /analyze`` takes (characters); documents are not bounded by it.
MAX_ANALYZE_CHARS = 1_000_000


class ContentKeyword(BaseModel):
    """A keyword and how strongly it stands for the text (0..1, higher is better)."""

    term: str
    score: float


class ContentEntity(BaseModel):
    """A named entity: ``PERSON``, ``PLACE``, ``ORG``, ``DATE`` or ``MISC``."""

    text: str
    label: str


class Readability(BaseModel):
    """Flesch reading ease (higher is easier) and Flesch-Kincaid grade level."""

    flesch_reading_ease: float
    grade_level: float


class ContentAnalysis(BaseModel):
    """What analysis found in a text."""

    language: str
    word_count: int
    keywords: list[ContentKeyword]
    entities: list[ContentEntity]
    summary: str
    readability: Readability
    difficulty: Literal["beginner", "intermediate", "advanced"]
    concepts: list[str]


class Content(BaseModel):
    """A document as the API shows it; ``analysis`` once processed, ``error`` if failed."""

    id: str
    tenant_id: str
    title: str
    content_type: str
    size: int
    sha256: str
    status: Status
    error: str | None = None
    tags: list[str]
    analysis: ContentAnalysis | None = None
    created_at: datetime
    updated_at: datetime


class ContentCreate(BaseModel):
    """A document given as JSON: exactly one of ``text``, ``html``, ``markdown``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    html: str | None = None
    markdown: str | None = None
    title: str | None = Field(default=None, min_length=1, max_length=TITLE_LENGTH)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)

    @model_validator(mode="after")
    def _one_body(self) -> ContentCreate:
        given = [name for name in ("text", "html", "markdown") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'text', 'html' or 'markdown'")
        return self


class TextChunk(BaseModel):
    """A piece of a document's text: ``text == full_text[start:end]``."""

    index: int
    text: str
    start: int
    end: int


class AnalyzeRequest(BaseModel):
    """A text to analyse; nothing is stored."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=MAX_ANALYZE_CHARS)


class ContentSearch(BaseModel):
    """A search over the chunks of the caller's documents."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=1000)
    mode: Literal["keyword", "semantic", "hybrid"] = "keyword"
    limit: int = Field(default=10, ge=1, le=100)


class ContentHit(BaseModel):
    """A chunk found by search, with its score (higher is better)."""

    content_id: str
    chunk_index: int
    text: str
    score: float


class ContentHits(BaseModel):
    """Hits, best first."""

    data: list[ContentHit]


def clean_tags(tags: list[str]) -> list[str]:
    """Tags trimmed, without blanks or repeats, each at most ``TAG_LENGTH`` characters."""
    seen: list[str] = []
    for tag in tags:
        value = tag.strip()
        if not value:
            continue
        if len(value) > TAG_LENGTH:
            raise ValueError(f"a tag is at most {TAG_LENGTH} characters")
        if value not in seen:
            seen.append(value)
    if len(seen) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return seen
