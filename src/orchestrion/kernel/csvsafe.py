"""CSV the platform streams, guarded against formula injection (OWASP "CSV injection").

A spreadsheet opening a CSV runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (``=HYPERLINK(...)``, ``=cmd|' /C calc'!A0``), and some also after a leading tab
or carriage return. Every text cell that starts with one of those is written with a
single quote in front, which spreadsheets show as text and never evaluate. Numbers are
left as they are: a negative number is data, not a formula, and stays a number.

Every ``text/csv`` response goes through :class:`SafeWriter` (or :func:`safe_cell`), so
one rule covers all of them::

    writer = SafeWriter(buffer)
    writer.writerow(["id", "name"])
    writer.writerow([1, "=HYPERLINK(\\"http://x\\")"])   # -> 1,"'=HYPERLINK(""http://x"")"
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

__all__ = ["FORMULA_STARTS", "SafeDictWriter", "SafeWriter", "safe_cell", "safe_row"]

#: What a cell may not start with, unquoted.
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


class _Writable(Protocol):
    def write(self, text: str, /) -> Any: ...


def safe_cell(value: Any) -> Any:
    """``value``, with ``'`` in front when it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """Every cell of ``row`` through :func:`safe_cell`."""
    return [safe_cell(value) for value in row]


class SafeWriter:
    """``csv.writer`` whose rows go through :func:`safe_row`."""

    def __init__(self, out: _Writable, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        """Write one row, each text cell guarded."""
        self._writer.writerow(safe_row(row))


class SafeDictWriter:
    """``csv.DictWriter`` whose values go through :func:`safe_cell`."""

    def __init__(self, out: _Writable, fieldnames: Iterable[str], **options: Any) -> None:
        self._writer = csv.DictWriter(out, fieldnames=list(fieldnames), **options)

    def writeheader(self) -> None:
        """Write the header row (the field names, guarded like any cell)."""
        self._writer.writerow({name: safe_cell(name) for name in self._writer.fieldnames})

    def writerow(self, row: Mapping[str, Any]) -> None:
        """Write one row, each text value guarded."""
        self._writer.writerow({key: safe_cell(value) for key, value in row.items()})
