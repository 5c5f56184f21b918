"""List conventions of API.md: page, limit, sort, fields, filters and cursors.

``?page=2&limit=20&sort=created_at:desc,name:asc&fields=id,name&status=active``. Unknown
sort or filter fields are a 400, never silently ignored. ``cursor=`` switches to keyset
pagination (stable under inserts, fast deep into a large collection): the cursor is the
sort key of the last row seen, with ``id`` as the tie-breaker.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from orchestrion.kernel.errors import BadRequest

Filter = Callable[[str], ColumnElement[bool]]
Item = TypeVar("Item")
RESERVED = frozenset({"page", "limit", "sort", "fields", "cursor"})
MAX_LIMIT = 100
DEFAULT_MAX_OFFSET = 100_000
MAX_CURSOR_LENGTH = 4096
_CURSOR_SCALARS = (str, int, float, bool, datetime, type(None))


def equals(column: Any) -> Filter:
    """A filter matching ``column == value``."""

    def build(value: str) -> ColumnElement[bool]:
        return column == value  # type: ignore[no-any-return]

    return build


def one_of(column: Any, *, limit: int = MAX_LIMIT) -> Filter:
    """A filter matching ``column`` against a comma-separated list of values (at most
    ``limit``): what lets a client fetch several parents' children in one call."""

    def build(value: str) -> ColumnElement[bool]:
        values = list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
        if len(values) > limit:
            raise BadRequest(
                f"at most {limit} comma-separated values",
                errors=[{"loc": ["query"], "msg": f"more than {limit} values"}],
            )
        return column.in_(values)  # type: ignore[no-any-return]

    return build


@dataclass(frozen=True)
class ListSpec:
    """What a collection allows: sortable columns, filters and selectable fields."""

    sortable: Mapping[str, Any]
    filters: Mapping[str, Filter]
    fields: frozenset[str]
    default_sort: str = "created_at:desc"
    id_column: Any = None


@dataclass
class ListQuery:
    """A parsed and checked list request."""

    page: int = 1
    limit: int = 20
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (name, descending)
    fields: list[str] | None = None
    filters: dict[str, str] = field(default_factory=dict)
    cursor: list[Any] | None = None
    cursor_mode: bool = False


def _choice(names: Sequence[str], suffix: str = "") -> str:
    one = f"({'|'.join(sorted(names))}){suffix}"
    return f"^{one}(,{one})*$"


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def list_parameters(spec: ListSpec) -> dict[str, Any]:
    """The query parameters :func:`parse_list_query` reads for ``spec``, as ``openapi_extra``.

    A list route reads its parameters from the query string itself (unknown ones are a
    400), so FastAPI does not see them: this declares them, with the sortable fields,
    selectable fields and filters of ``spec``, so that the document and the SDK know them.
    """
    # With the default furthest offset, any page up to this one is in reach at any limit.
    last_page = DEFAULT_MAX_OFFSET // MAX_LIMIT + 1
    parameters = [
        _query(
            "page",
            "Page number, from 1; `(page - 1) * limit` at most `limits.list_max_offset`",
            {"type": "integer", "minimum": 1, "maximum": last_page, "default": 1},
        ),
        _query(
            "limit",
            f"Items per page (at most {MAX_LIMIT} are returned)",
            {"type": "integer", "minimum": 1, "default": 20},
        ),
        _query(
            "sort",
            f"Comma-separated `field[:asc|desc]`; default `{spec.default_sort}`",
            {"type": "string", "pattern": _choice(list(spec.sortable), "(:(asc|desc))?")},
        ),
        _query(
            "fields",
            "Comma-separated fields to return (`id` always is)",
            {"type": "string", "pattern": _choice(sorted(spec.fields))},
        ),
        _query(
            "cursor",
            "Keyset pagination: empty for the first page, then `meta.next_cursor`",
            {"type": "string", "maxLength": MAX_CURSOR_LENGTH},
        ),
    ]
    parameters += [
        _query(name, f"Only items whose `{name}` is this value", {"type": "string"})
        for name in sorted(spec.filters)
    ]
    return {"parameters": parameters}


def query_int(raw: str | None, name: str, *, default: int, minimum: int = 1) -> int:
    """An integer query parameter, ``default`` when absent; 400 when malformed (empty
    included: the document says an integer) or too small."""
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"'{name}' must be an integer",
            errors=[{"loc": ["query", name], "msg": "not an integer"}],
        ) from None
    if value < minimum:
        raise BadRequest(
            f"'{name}' must be at least {minimum}",
            errors=[{"loc": ["query", name], "msg": f"must be >= {minimum}"}],
        )
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$dt" in value:
        return datetime.fromisoformat(value["$dt"])
    return value


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    return value


def encode_cursor(values: Sequence[Any]) -> str:
    """An opaque cursor for the row whose sort key is ``values``."""
    raw = json.dumps([_encode_value(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _invalid_cursor() -> BadRequest:
    return BadRequest(
        "invalid cursor", errors=[{"loc": ["query", "cursor"], "msg": "not a cursor"}]
    )


def _decode_cursor(raw: str, expected: int) -> list[Any]:
    # Cursors come back from clients: bound them and accept only what encode_cursor makes.
    if len(raw) > MAX_CURSOR_LENGTH:
        raise _invalid_cursor()
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not isinstance(values, list) or len(values) != expected:
            raise ValueError("cursor shape")
        decoded = [_decode_value(v) for v in values]
    except (ValueError, binascii.Error, TypeError, RecursionError):
        raise _invalid_cursor() from None
    if not all(isinstance(v, _CURSOR_SCALARS) for v in decoded):
        raise _invalid_cursor()
    return decoded


def _check_cursor_types(columns: Sequence[Any], values: Sequence[Any]) -> None:
    """A cursor value of the wrong type for its column is a 400, not a database error."""
    for column, value in zip(columns, values, strict=True):
        if value is None:
            continue
        expected = _python_type(column.type)
        if expected is None:  # JSON and the like: the database compares those itself
            continue
        numeric = expected is float and isinstance(value, int)
        if not (isinstance(value, expected) or numeric) or (
            isinstance(value, bool) and expected is not bool
        ):
            raise _invalid_cursor()


def _python_type(kind: Any) -> type | None:
    """The Python type a column type holds (a TypeDecorator's wrapped one), if it names one.

    SQLAlchemy's types without a single Python type raise from ``python_type``.
    """
    kind = getattr(kind, "impl_instance", kind)
    try:
        expected: type = kind.python_type
    except Exception:
        return None
    return expected


def max_offset(request: Request) -> int:
    """How far a paged list of this app may skip (``limits.list_max_offset``)."""
    value = getattr(request.app.state, "list_max_offset", DEFAULT_MAX_OFFSET)
    return int(value)


def parse_list_query(request: Request, spec: ListSpec) -> ListQuery:
    """Read the list parameters from ``request``; 400 on anything unknown."""
    params = request.query_params
    errors: list[dict[str, Any]] = []
    query = ListQuery(
        page=query_int(params.get("page"), "page", default=1),
        limit=min(query_int(params.get("limit"), "limit", default=20), MAX_LIMIT),
    )
    for item in (params.get("sort") or spec.default_sort).split(","):
        name, _, direction = item.strip().partition(":")
        direction = direction or "asc"
        if name not in spec.sortable:
            errors.append({"loc": ["query", "sort"], "msg": f"cannot sort by '{name}'"})
        elif direction not in ("asc", "desc"):
            errors.append(
                {
                    "loc": ["query", "sort"],
                    "msg": f"direction must be asc or desc, not '{direction}'",
                }
            )
        else:
            query.sort.append((name, direction == "desc"))
    if params.get("fields"):
        wanted = [f.strip() for f in params["fields"].split(",") if f.strip()]
        unknown = [f for f in wanted if f not in spec.fields]
        errors.extend({"loc": ["query", "fields"], "msg": f"unknown field '{f}'"} for f in unknown)
        query.fields = ["id", *[f for f in wanted if f != "id"]]
    for name in params:
        if name in RESERVED:
            continue
        if name not in spec.filters:
            errors.append({"loc": ["query", name], "msg": f"unknown filter '{name}'"})
        else:
            query.filters[name] = params[name]
    if errors:
        raise BadRequest("; ".join(e["msg"] for e in errors), errors=errors)
    furthest = max_offset(request)
    if (query.page - 1) * query.limit > furthest:
        raise BadRequest(
            f"page {query.page} is past the furthest offset a paged list may skip "
            f"({furthest:,} items, limits.list_max_offset); use cursor= to go further",
            errors=[{"loc": ["query", "page"], "msg": f"offset must be <= {furthest}"}],
        )
    if "cursor" in params:
        query.cursor_mode = True
        if params["cursor"]:
            query.cursor = _decode_cursor(params["cursor"], len(query.sort) + 1)
    return query


def _keyset_after(columns: Sequence[Any], descending: Sequence[bool], values: Sequence[Any]) -> Any:
    """Rows strictly after ``values`` in the sort order (a lexicographic OR-chain)."""
    clauses = []
    for i, (column, desc) in enumerate(zip(columns, descending, strict=True)):
        prefix = [columns[j] == values[j] for j in range(i)]
        step = column < values[i] if desc else column > values[i]
        clauses.append(and_(*prefix, step))
    return or_(*clauses)


@dataclass
class Page:
    """One page of rows and what the response's ``meta`` needs."""

    rows: list[Any]
    total: int
    next_cursor: str | None


async def fetch_page(
    session: AsyncSession, stmt: Select[Any], spec: ListSpec, query: ListQuery
) -> Page:
    """Apply filters, sort and pagination to ``stmt`` (which selects one entity) and run it."""
    for name, value in query.filters.items():
        stmt = stmt.where(spec.filters[name](value))
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    id_column = spec.id_column
    columns = [spec.sortable[name] for name, _ in query.sort] + [id_column]
    descending = [desc for _, desc in query.sort] + [query.sort[-1][1] if query.sort else False]
    stmt = stmt.order_by(
        *[c.desc() if d else c.asc() for c, d in zip(columns, descending, strict=True)]
    )
    if query.cursor_mode:
        if query.cursor is not None:
            _check_cursor_types(columns, query.cursor)
            stmt = stmt.where(_keyset_after(columns, descending, query.cursor))
        rows = list((await session.execute(stmt.limit(query.limit + 1))).scalars())
        next_cursor = None
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            last = rows[-1]
            keys = [name for name, _ in query.sort] + ["id"]
            next_cursor = encode_cursor([getattr(last, _attr(spec, k)) for k in keys])
        return Page(rows=rows, total=total, next_cursor=next_cursor)
    offset = (query.page - 1) * query.limit
    rows = list((await session.execute(stmt.offset(offset).limit(query.limit))).scalars())
    return Page(rows=rows, total=total, next_cursor=None)


def _attr(spec: ListSpec, name: str) -> str:
    column = spec.id_column if name == "id" else spec.sortable[name]
    return str(getattr(column, "key", name))


def _link(request: Request, **changes: Any) -> str:
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return str(request.url.replace_query_params(**params))


def trim(item: Mapping[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """``item`` reduced to ``fields`` (all of it when None)."""
    if fields is None:
        return dict(item)
    return {k: item[k] for k in fields if k in item}


def list_body(
    request: Request, items: Sequence[Mapping[str, Any]], query: ListQuery, page: Page
) -> dict[str, Any]:
    """The ``{"data", "meta", "links"}`` envelope of API.md."""
    data = [trim(item, query.fields) for item in items]
    meta: dict[str, Any] = {"page": query.page, "limit": query.limit, "total": page.total}
    if query.cursor_mode:
        meta["next_cursor"] = page.next_cursor
        next_link = _link(request, cursor=page.next_cursor) if page.next_cursor else None
        return {
            "data": data,
            "meta": meta,
            "links": {"self": str(request.url), "next": next_link, "prev": None},
        }
    has_next = query.page * query.limit < page.total
    links = {
        "self": str(request.url),
        "next": _link(request, page=query.page + 1) if has_next else None,
        "prev": _link(request, page=query.page - 1) if query.page > 1 else None,
    }
    return {"data": data, "meta": meta, "links": links}


class ListMeta(BaseModel):
    """The ``meta`` of a list answer."""

    page: int
    limit: int
    total: int
    next_cursor: str | None = Field(
        default=None,
        description="Only with `cursor=`: the cursor of the next page, null on the last one.",
    )


class ListLinks(BaseModel):
    """The ``links`` of a list answer."""

    self: str
    next: str | None
    prev: str | None


class ListPage(BaseModel, Generic[Item]):
    """The ``{"data", "meta", "links"}`` envelope of :func:`list_body`, as a response model.

    With ``fields=``, each item holds only the chosen keys (``id`` always kept).
    """

    data: list[Item]
    meta: ListMeta
    links: ListLinks
