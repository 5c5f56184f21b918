"""Content: documents per second per format, and search latency, beside the raw libraries.

    .venv/bin/python -m bench.content [--docs 12] [--chunks 10000] [--queries 200]
                                      [--query-vectors model|random] [--postgres]

Documents: for each format, ``--docs`` documents generated here from seeded English prose
(headings, lists, names, dates), their text spread from ~3 KB to ~100 KB; PDFs are
written with fpdf2, DOCX with python-docx. Rows, each the best of ``--rounds`` timed
passes over all documents of the format (raw and ours alternate within a round):

- raw: the parser library alone on the same bytes: ``bytes.decode`` (text, Markdown),
  ``json.loads``, defusedxml ``fromstring`` + ``itertext``, selectolax lexbor ``text()``,
  pypdf ``PdfReader`` + ``extract_text`` per page, python-docx paragraphs;
- ours: :func:`formats.sniff` + :func:`extract.extract` (the service's limits and
  hardening: type from the bytes, zip-bomb checks, dropped elements, normalised text);
- analysis and chunks: :func:`analysis.analyze` and :func:`chunking.chunk_text` alone on
  the extracted text; pipeline: sniff + extract + analysis + chunks, what processing a
  document costs before it is stored (embedding aside: ``bench.embeddings``).

Search: a migrated database (SQLite in a temp dir; with ``--postgres`` also a fresh
PostgreSQL database, dropped afterwards) holding ``--chunks`` chunks of one tenant,
cut from generated documents by the service's chunker and inserted in bulk through the
repository. Chunk vectors are random unit vectors (384 floats, the local model's size):
embedding 10,000 chunks with the model would take minutes and does not change the cost
of a search. Queries are 1 to 4 words of the corpus; with ``--query-vectors model`` they
are embedded by the real model up front (and the ``semantic + embed`` row embeds each one
during the search, as a request does), with ``random`` they are random unit vectors.
Each query is one session, like one request, through ``search.search``; the first
semantic query (the matrix read from the database) is reported apart. Baselines: the same
FTS5 SQL through the standard library's ``sqlite3`` (no SQLAlchemy, no session), and
``top_k`` over the matrix already in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import numpy as np

from bench.content_docs import FORMATS, generate_documents, prose
from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.db.engine import Database
from orchestrion.kernel.embeddings import Matrix, normalise
from orchestrion.kernel.ids import new_id, utcnow
from orchestrion.kernel.queue import TaskQueue
from orchestrion.kernel.search import from_blobs, to_blob, top_k
from orchestrion.migrations import upgrade
from orchestrion.services.content import formats, repository
from orchestrion.services.content.analysis import analyze
from orchestrion.services.content.chunking import chunk_text
from orchestrion.services.content.extract import Limits, extract
from orchestrion.services.content.models import FTS_TABLE, ContentChunk, ContentDocument
from orchestrion.services.content.schemas import ContentSearch
from orchestrion.services.content.search import VectorCache, search
from orchestrion.services.content.service import ContentRuntime

#: The content settings' defaults: what a document meets in a default installation.
LIMITS = Limits.of(max_bytes=10 * 1024 * 1024, max_extracted_chars=5_000_000)
CHUNK_SIZE, CHUNK_OVERLAP = 1000, 150
DIMENSIONS = 384
TENANT = "00000000-0000-0000-0000-00000000b014"


# --- documents per second ------------------------------------------------------------


def _raw_text(data: bytes) -> str:
    return data.decode("utf-8")


def _raw_json(data: bytes) -> object:
    return json.loads(data)


def _raw_xml(data: bytes) -> str:
    from defusedxml import ElementTree

    return "".join(ElementTree.fromstring(data).itertext())


def _raw_html(data: bytes) -> str:
    from selectolax.lexbor import LexborHTMLParser

    body = LexborHTMLParser(data.decode("utf-8")).body
    return body.text() if body is not None else ""


def _raw_pdf(data: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _raw_docx(data: bytes) -> str:
    import docx

    return "\n".join(p.text for p in docx.Document(io.BytesIO(data)).paragraphs)


RAW: dict[str, tuple[str, Callable[[bytes], object]]] = {
    formats.TEXT: ("bytes.decode", _raw_text),
    formats.MARKDOWN: ("bytes.decode", _raw_text),
    formats.HTML: ("selectolax lexbor", _raw_html),
    formats.JSON: ("json.loads", _raw_json),
    formats.XML: ("defusedxml itertext", _raw_xml),
    formats.PDF: ("pypdf", _raw_pdf),
    formats.DOCX: ("python-docx", _raw_docx),
}


def _ours(data: bytes) -> str:
    return extract(data, formats.sniff(data), LIMITS).text


def _pipeline(data: bytes) -> int:
    text = extract(data, formats.sniff(data), LIMITS).text
    analyze(text)
    return len(chunk_text(text, size=CHUNK_SIZE, overlap=CHUNK_OVERLAP))


def _rate(function: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Items per second of one pass of ``function`` over ``items``."""
    start = time.perf_counter()
    for item in items:
        function(item)
    return len(items) / (time.perf_counter() - start)


def measure_formats(docs: int, rounds: int) -> list[dict[str, Any]]:
    """One row per format: docs/s raw, ours, analysis, chunks and the whole pipeline."""
    rows = []
    for short, content_type in FORMATS.items():
        documents = generate_documents(content_type, docs)
        for document in documents:  # the bench measures what it means to
            if formats.sniff(document.data) != content_type:
                raise RuntimeError(f"a generated {short} document is not sniffed as {short}")
        name, raw = RAW[content_type]
        data = [d.data for d in documents]
        texts = [_ours(d) for d in data]  # also the warm-up: imports, caches
        raw(data[0])
        analyze(texts[0])
        if sum(len(t) for t in texts) < 0.9 * sum(d.chars for d in documents):
            raise RuntimeError(f"the extracted {short} text misses some of the prose")
        best: dict[str, float] = {}
        for _ in range(rounds):
            for column, function, items in (
                ("raw", raw, data),
                ("sniff", formats.sniff, data),
                ("ours", _ours, data),
                ("analysis", analyze, texts),
                ("chunks", lambda t: chunk_text(t, size=CHUNK_SIZE, overlap=CHUNK_OVERLAP), texts),
                ("pipeline", _pipeline, data),
            ):
                best[column] = max(best.get(column, 0.0), _rate(function, items))
        rows.append(
            {
                "format": short,
                "raw_name": name,
                "docs": len(documents),
                "kb": statistics.mean(len(d) for d in data) / 1024,
                **best,
            }
        )
    return rows


def _ratio(value: float) -> str:
    return f"{value:.4f}x" if value < 0.1 else f"{value:.2f}x"


def print_formats(rows: list[dict[str, Any]]) -> None:
    """The documents-per-second table."""
    header = (
        f"{'format':9} {'docs':>4} {'avg KB':>7} {'raw library':20} {'raw/s':>8} "
        f"{'sniff/s':>8} {'ours/s':>8} {'ours/raw':>8} {'analysis/s':>10} {'chunks/s':>9} "
        f"{'pipeline/s':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['format']:9} {r['docs']:>4} {r['kb']:>7.1f} {r['raw_name']:20} "
            f"{r['raw']:>8,.1f} {r['sniff']:>8,.0f} {r['ours']:>8,.1f} "
            f"{_ratio(r['ours'] / r['raw']):>8} "
            f"{r['analysis']:>10,.2f} {r['chunks']:>9,.0f} {r['pipeline']:>10,.2f}"
        )


# --- search at N chunks --------------------------------------------------------------


class QueryVectors:
    """An embedder that answers with vectors computed before the clock started, so a
    search row times the search, not the model."""

    def __init__(self, name: str, vectors: dict[str, Matrix]) -> None:
        self.name = name
        self.dimensions = DIMENSIONS
        self._vectors = vectors

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """The stored vector of each text."""
        return np.stack([self._vectors[t] for t in texts])


def corpus(chunks: int, seed: int = 21) -> list[tuple[str, list[str]]]:
    """``(document text, its chunk texts)`` until ``chunks`` chunks, cut by the service's
    chunker from documents of 5 to 40 chunks."""
    rng = random.Random(seed)
    out: list[tuple[str, list[str]]] = []
    total = 0
    while total < chunks:
        sections = prose(rng, rng.randint(4, 32) * CHUNK_SIZE)
        text = "\n\n".join("\n\n".join(s) for s in sections)
        pieces = [c.text for c in chunk_text(text, size=CHUNK_SIZE, overlap=CHUNK_OVERLAP)]
        pieces = pieces[: chunks - total]
        out.append((text, pieces))
        total += len(pieces)
    return out


def queries(count: int, seed: int = 5) -> list[str]:
    """1 to 4 words: topic terms, names, places, verbs, and now and then a word the
    corpus does not hold."""
    from bench.content_docs import PLACES, TOPICS, VERBS

    words = sorted({w for terms in TOPICS.values() for t in terms for w in t.split()})
    words += [p.lower() for p in PLACES] + VERBS + ["quantum", "violin", "glacier"]
    rng = random.Random(seed)
    return [" ".join(rng.sample(words, rng.randint(1, 4))) for _ in range(count)]


async def fill(database: Database, chunks: int) -> Matrix:
    """Insert the corpus for :data:`TENANT`; the stored vectors, in chunk id order."""
    rng = np.random.default_rng(3)
    vectors = normalise(rng.normal(size=(chunks, DIMENSIONS)).astype(np.float32))
    row = 0
    documents = corpus(chunks)
    for start in range(0, len(documents), 50):
        async with database.session() as session:
            for text, pieces in documents[start : start + 50]:
                now, document_id = utcnow(), new_id()
                await repository.insert_rows(session, ContentDocument, [{
                    "id": document_id, "tenant_id": TENANT, "title": text[:60],
                    "content_type": formats.TEXT, "size": len(text), "sha256": "0" * 64,
                    "status": "processed", "error": None, "tags": [], "data": text.encode(),
                    "text": text, "analysis": {}, "created_at": now, "updated_at": now,
                }])  # fmt: skip
                await repository.insert_rows(session, ContentChunk, [{
                    "document_id": document_id, "tenant_id": TENANT, "chunk_index": i,
                    "text": piece, "start_offset": 0, "end_offset": len(piece),
                    "embedding": to_blob(vectors[row + i]),
                } for i, piece in enumerate(pieces)])  # fmt: skip
                row += len(pieces)
            await repository.bump_revision(session, tenant_id=TENANT)
    return vectors


def _ms(values: list[float]) -> tuple[float, float]:
    """p50 and p95 in milliseconds."""
    array = np.array(values) * 1000
    return float(np.percentile(array, 50)), float(np.percentile(array, 95))


async def _raw_keyword(url: str, words: list[str]) -> list[float]:
    """The keyword index's own SQL through the plain driver: no ORM, no session."""
    times = []
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1])
        sql = (
            f"SELECT c.id, -bm25({FTS_TABLE}) AS score FROM {FTS_TABLE} "
            f"JOIN content_chunks c ON c.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH ? AND c.tenant_id = ? ORDER BY score DESC, c.id LIMIT 10"
        )
        for query in words:
            match = " OR ".join(f'"{t}"' for t in repository.query_terms(query))
            start = time.perf_counter()
            connection.execute(sql, (match, TENANT)).fetchall()
            times.append(time.perf_counter() - start)
        connection.close()
        return times
    pg = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    sql = (
        "SELECT c.id, ts_rank_cd(c.fts_vector, q) AS score "
        "FROM content_chunks c, websearch_to_tsquery('english', $1) q "
        "WHERE c.tenant_id = $2 AND c.fts_vector @@ q "
        "ORDER BY score DESC, c.id LIMIT 10"
    )
    for query in words:
        start = time.perf_counter()
        await pg.fetch(sql, " or ".join(repository.query_terms(query)), TENANT)
        times.append(time.perf_counter() - start)
    await pg.close()
    return times


async def measure_search(
    url: str, chunks: int, words: list[str], vectors: dict[str, Matrix], model: Any
) -> list[tuple[str, float, float, float, float, float]]:
    """Rows ``(mode, first ms, p50 ms, p95 ms, baseline p50 ms, hits per query)``."""
    database = Database(url)
    try:
        stored = await fill(database, chunks)
        async with database.session() as session:
            rows = await repository.vectors(session, tenant_id=TENANT, size=DIMENSIONS * 4)
        in_memory = from_blobs([blob for _, blob in rows], DIMENSIONS)
        assert in_memory.shape == stored.shape
        principal = Principal(subject="bench", tenant_id=TENANT)
        raw = await _raw_keyword(url, words)
        matrix: list[float] = []
        for query in words:
            start = time.perf_counter()
            top_k(in_memory, vectors[query], 10)
            matrix.append(time.perf_counter() - start)
        plans = [
            ("keyword", "keyword", QueryVectors("bench", vectors), _ms(raw)[0]),
            ("semantic", "semantic", QueryVectors("bench", vectors), _ms(matrix)[0]),
            ("hybrid", "hybrid", QueryVectors("bench", vectors), float("nan")),
        ]
        if model is not None:
            plans.append(("semantic + embed", "semantic", model, _ms(matrix)[0]))
        out = []
        for label, mode, embedder, baseline in plans:
            runtime = ContentRuntime(
                limits=LIMITS, max_bytes=LIMITS.max_chars, inline_max_bytes=0,
                chunk_size=CHUNK_SIZE, chunk_overlap=CHUNK_OVERLAP,
                queue=TaskQueue(database, lease=timedelta(minutes=5)),
                embedder=embedder, parsers=anyio.CapacityLimiter(2),
            )  # fmt: skip
            cache = VectorCache()
            times, hits = [], 0
            for query in words:
                request = ContentSearch(query=query, mode=mode, limit=10)
                start = time.perf_counter()
                async with database.session() as session:
                    found = await search(
                        session, runtime=runtime, cache=cache, principal=principal, request=request
                    )
                times.append(time.perf_counter() - start)
                hits += len(found)
            first = times[0] * 1000
            p50, p95 = _ms(times[1:] or times)
            out.append((label, first, p50, p95, baseline, hits / len(words)))
        return out
    finally:
        await database.dispose()


def print_search(title: str, rows: list[tuple[str, float, float, float, float, float]]) -> None:
    """One database's search table."""
    print(f"\n{title}")
    header = (
        f"{'mode':17} {'first ms':>9} {'p50 ms':>8} {'p95 ms':>8} {'baseline p50':>12} "
        f"{'p50/base':>8} {'hits/q':>7}"
    )
    print(header)
    print("-" * len(header))
    for mode, first, p50, p95, baseline, hits in rows:
        base = "-" if baseline != baseline else f"{baseline:.3f}"
        ratio = "-" if baseline != baseline else f"{p50 / baseline:.1f}x"
        print(f"{mode:17} {first:>9.2f} {p50:>8.2f} {p95:>8.2f} {base:>12} {ratio:>8} {hits:>7.1f}")


async def postgres_database() -> tuple[str, Callable[[], Any]]:
    """A fresh migrated PostgreSQL database and the coroutine function that drops it."""
    name = f"orchestrion_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()

    async def drop() -> None:
        connection = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.close()

    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
    except BaseException:
        await drop()
        raise
    return url, drop


async def run(args: argparse.Namespace) -> None:
    """Both parts, printed as they finish."""
    if args.docs > 0:
        print(f"\nDocuments per second, best of {args.rounds} (ours = sniff + extract)")
        print_formats(measure_formats(args.docs, args.rounds))
    if args.chunks <= 0:
        return
    words = queries(args.queries)
    model = None
    if args.query_vectors == "model":
        from orchestrion.kernel.embeddings.local import LocalEmbedder

        model = LocalEmbedder()
        matrix = await model.embed(words)
    else:
        matrix = normalise(
            np.random.default_rng(9).normal(size=(len(words), DIMENSIONS)).astype(np.float32)
        )
    vectors = {w: matrix[i] for i, w in enumerate(words)}
    what = f"{args.chunks:,} chunks, {len(words)} queries ({args.query_vectors} query vectors)"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'content.db'}"
        await asyncio.to_thread(upgrade, url)
        rows = await measure_search(url, args.chunks, words, vectors, model)
        print_search(f"Search, SQLite, {what}", rows)
    if args.postgres:
        url, drop = await postgres_database()
        try:
            rows = await measure_search(url, args.chunks, words, vectors, model)
        finally:
            await drop()
        print_search(f"Search, PostgreSQL, {what}", rows)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, print the command, run."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=12, help="documents per format")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--query-vectors", choices=["model", "random"], default="model")
    parser.add_argument("--postgres", action="store_true")
    arguments = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(arguments)
    print(f"$ {' '.join([Path(sys.executable).name, '-m', 'bench.content', *arguments])}")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
