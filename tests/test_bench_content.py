"""``bench.content`` runs end to end at tiny sizes and prints sane tables.

Figures are not asserted (benchmarks are never timed assertions); what is asserted is
that every format was generated, recognised and read, and that every search mode found
chunks in the database the bench filled.
"""

from __future__ import annotations

import asyncio
import re

import asyncpg
import pytest
from bench.content import main
from bench.content_docs import FORMATS, generate_documents

from orchestrion.services.content import formats
from orchestrion.services.content.extract import Limits, extract
from tests.fixtures.databases import in_thread, server_missing

CHUNKS = 60
QUERIES = 8


def _rows(output: str, title: str) -> dict[str, list[str]]:
    """The table under ``title``: first column -> the other columns."""
    block = output.split(title, 1)[1].split("\n\n", 1)[0]
    lines = [line for line in block.splitlines()[3:] if line.strip()]
    return {line[:17].strip(): line[17:].split() for line in lines}


def test_generated_documents_are_their_format() -> None:
    for content_type in FORMATS.values():
        (document,) = generate_documents(content_type, 1)
        assert formats.sniff(document.data) == content_type
        text = extract(document.data, content_type, Limits(1_000_000, 10_000_000)).text
        assert len(text) >= 0.9 * document.chars


async def _bench_databases() -> set[str]:
    connection = await asyncpg.connect(host="127.0.0.1", user="postgres", database="postgres")
    try:
        rows = await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE 'orchestrion_bench_%'"
        )
    finally:
        await connection.close()
    return {row[0] for row in rows}


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_tiny_run(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--docs", "1", "--rounds", "1", "--chunks", str(CHUNKS), "--queries", str(QUERIES)]
    argv += ["--query-vectors", "random"]
    before: set[str] = set()
    if database == "postgres":
        try:
            before = in_thread(asyncio.run, _bench_databases())
        except (OSError, asyncpg.PostgresError) as exc:
            server_missing("PostgreSQL at 127.0.0.1:5432", exc)
        argv.append("--postgres")
    in_thread(main, argv)
    output = capsys.readouterr().out
    assert output.startswith("$ ")
    assert "-m bench.content --docs 1" in output

    table = output.split("Documents per second", 1)[1].split("\n\n", 1)[0]
    for short in FORMATS:
        row = re.search(rf"^{short}\s+1\s+(.*)$", table, re.M)
        assert row is not None, f"no row for {short}"
        figures = [f for f in row.group(1).split() if re.fullmatch(r"[\d,.]+x?", f)]
        assert len(figures) == 8
        assert all(float(f.rstrip("x").replace(",", "")) > 0 for f in figures)

    titles = ["Search, SQLite"] + (["Search, PostgreSQL"] if database == "postgres" else [])
    for title in titles:
        rows = _rows(output, title)
        assert set(rows) == {"keyword", "semantic", "hybrid"}
        hits = {mode: float(columns[-1]) for mode, columns in rows.items()}
        # A tiny corpus covers a few topics, so some queries find no word; vectors always rank.
        assert 0 < hits["keyword"] <= 10
        assert hits["semantic"] == 10.0
        assert hits["hybrid"] == 10.0
    if database == "postgres":
        assert in_thread(asyncio.run, _bench_databases()) <= before
