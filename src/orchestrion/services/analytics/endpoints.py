"""HTTP routes of analytics: requests to service calls, nothing more."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.csvsafe import SafeDictWriter
from orchestrion.kernel.errors import BadRequest
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.lists import (
    DEFAULT_MAX_OFFSET,
    MAX_LIMIT,
    ListPage,
    Page,
    list_body,
    list_parameters,
    parse_list_query,
)
from orchestrion.kernel.ids import isoformat
from orchestrion.services.analytics import service
from orchestrion.services.analytics.responses import problems
from orchestrion.services.analytics.schemas import (
    AnalyticsReport,
    AnalyticsSeries,
    AnalyticsSlo,
    AnalyticsSloCreate,
    AnalyticsSloList,
    AnalyticsSummary,
    AnalyticsWorkflow,
    Interval,
    Metric,
    ReportFormat,
)

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

From = Annotated[
    str | None,
    Query(
        alias="from",
        description="ISO 8601; executions started from this hour on (rounded down to the hour).",
        examples=["2026-12-01T00:00:00Z"],
        json_schema_extra={"format": "date-time"},
    ),
]
To = Annotated[
    str | None,
    Query(
        description="ISO 8601; executions started before this time (rounded up to the hour).",
        examples=["2026-12-02T00:00:00Z"],
        json_schema_extra={"format": "date-time"},
    ),
]
WorkflowId = Annotated[str | None, Query(max_length=36, description="Only this workflow.")]
TenantId = Annotated[
    str | None,
    Query(max_length=36, description="Platform admins: only this tenant (default: every one)."),
]


#: The furthest page the document offers (any limit reaches it within the offset bound).
_LAST_PAGE = DEFAULT_MAX_OFFSET // MAX_LIMIT + 1


def _list_parameters() -> dict[str, Any]:
    # Per-workflow figures are computed per page: offset pages only, no cursors.
    extra = list_parameters(service.WORKFLOW_LIST)
    extra["parameters"] = [p for p in extra["parameters"] if p["name"] != "cursor"]
    for parameter in extra["parameters"]:
        if parameter["name"] == "fields":
            # Empty asks for whole items, as the kernel's lists read it.
            parameter["schema"]["pattern"] = "^$|" + parameter["schema"]["pattern"]
        if parameter["name"] in ("from", "to"):
            parameter["description"] = "ISO 8601 time (see the summary)"
            parameter["schema"] = {"type": "string", "format": "date-time"}
    return extra


@router.get(
    "/summary",
    response_model=AnalyticsSummary,
    responses=problems(400, 401, 403),
    summary="Execution, duration, step, token and cost figures",
)
async def summary(
    session: Session,
    principal: CurrentPrincipal,
    start: From = None,
    to: To = None,
    workflow_id: WorkflowId = None,
    tenant_id: TenantId = None,
) -> Response:
    """Figures of the executions that started in the range (all time by default), from
    the projections of execution events (eventually consistent, within seconds)."""
    principal.require(Permission.ANALYTICS_READ)
    scope = service.scope(
        principal,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        start=service.parse_time(start, "from"),
        end=service.parse_time(to, "to"),
    )
    return JSONResponse(await service.summary(session, scope=scope))


@router.get(
    "/workflows",
    response_model=ListPage[AnalyticsWorkflow],
    openapi_extra=_list_parameters(),
    responses=problems(400, 401, 403),
    summary="The figures of each workflow",
)
async def workflows(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """One item per workflow with executions in the range (`id` is the workflow's id);
    list conventions; filters `from`, `to`, `workflow_id`, `tenant_id` (platform admins);
    sort by `executions`, `failed`, `cost_usd`..."""
    principal.require(Permission.ANALYTICS_READ)
    if request.query_params.get("sort") == "":
        raise BadRequest(
            "'sort' must name a field", errors=[{"loc": ["query", "sort"], "msg": "empty"}]
        )
    query = parse_list_query(request, service.WORKFLOW_LIST)
    if query.page > _LAST_PAGE:
        raise BadRequest(
            f"'page' is at most {_LAST_PAGE}",
            errors=[{"loc": ["query", "page"], "msg": f"must be <= {_LAST_PAGE}"}],
        )
    if query.cursor_mode:
        raise BadRequest(
            "this list pages by `page`, not by cursor",
            errors=[{"loc": ["query", "cursor"], "msg": "not offered here"}],
        )
    filters = query.filters
    scope = service.scope(
        principal,
        tenant_id=filters.get("tenant_id"),
        workflow_id=filters.get("workflow_id"),
        start=service.parse_time(filters.get("from"), "from"),
        end=service.parse_time(filters.get("to"), "to"),
    )
    items, total = await service.workflows(session, scope=scope, query=query)
    return JSONResponse(
        list_body(request, items, query, Page(rows=[], total=total, next_cursor=None))
    )


@router.get(
    "/timeseries",
    response_model=AnalyticsSeries,
    responses=problems(400, 401, 403),
    summary="A metric per hour or day",
)
async def timeseries(
    session: Session,
    principal: CurrentPrincipal,
    metric: Annotated[Metric, Query(description="What each point measures.")],
    interval: Annotated[Interval, Query(description="Point width.")] = "hour",
    start: From = None,
    to: To = None,
    workflow_id: WorkflowId = None,
    tenant_id: TenantId = None,
) -> Response:
    """One point per interval from `from` to `to` (default: the last day by hour, the
    last 30 days by day); intervals are UTC hours or days, labelled by their start.
    `executions` counts executions started, `succeeded` and `failures` those of them
    that succeeded and failed, `cost_usd` their model cost, `duration_p95` the 95th
    percentile of their durations (null when none finished)."""
    principal.require(Permission.ANALYTICS_READ)
    first, last = service.series_range(
        interval, service.parse_time(start, "from"), service.parse_time(to, "to")
    )
    scope = service.scope(
        principal, tenant_id=tenant_id, workflow_id=workflow_id, start=first, end=last
    )
    data = await service.timeseries(session, scope=scope, metric=metric, interval=interval)
    return JSONResponse({"metric": metric, "interval": interval, "data": data})


def _csv(rows: list[dict[str, Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = SafeDictWriter(buffer, service.REPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json(rows: list[dict[str, Any]], meta: dict[str, Any]) -> Iterator[str]:
    yield '{"meta": ' + json.dumps(meta) + ', "data": ['
    for i, row in enumerate(rows):
        yield ("," if i else "") + json.dumps(row)
    yield "]}"


@router.get(
    "/report",
    response_model=AnalyticsReport,
    responses={
        200: {
            "description": "The report: one row per day and workflow.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **problems(400, 401, 403),
    },
    summary="A downloadable report",
)
async def report(
    session: Session,
    principal: CurrentPrincipal,
    format: Annotated[ReportFormat, Query(description="`csv` or `json`.")] = "csv",
    start: From = None,
    to: To = None,
    workflow_id: WorkflowId = None,
    tenant_id: TenantId = None,
) -> Response:
    """One row per UTC day and workflow (columns: day, tenant_id, workflow_id, the
    execution counts, success_rate, duration p50/p95/p99, steps, tokens, cost_usd),
    streamed as an attachment."""
    principal.require(Permission.ANALYTICS_READ)
    scope = service.scope(
        principal,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        start=service.parse_time(start, "from"),
        end=service.parse_time(to, "to"),
    )
    rows = await service.report(session, scope=scope)
    name = "orchestrion-analytics"
    if format == "csv":
        return StreamingResponse(
            _csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    meta = {
        "from": isoformat(scope.start),
        "to": isoformat(scope.end),
        "columns": list(service.REPORT_COLUMNS),
    }
    return StreamingResponse(
        _json(rows, meta),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}.json"'},
    )


@router.post(
    "/slos",
    status_code=201,
    response_model=AnalyticsSlo,
    responses=problems(400, 401, 403, 422),
    summary="Create an SLO",
)
async def create_slo(
    data: AnalyticsSloCreate, session: Session, principal: CurrentPrincipal
) -> Response:
    """An objective over the caller's tenant (one workflow, or all), evaluated at once
    and whenever an execution it counts finishes."""
    principal.require(Permission.ANALYTICS_WRITE)
    body = await service.create_slo(session, principal=principal, data=data)
    return JSONResponse(
        body, status_code=201, headers={"Location": f"/api/v1/analytics/slos/{body['id']}"}
    )


@router.get(
    "/slos",
    response_model=AnalyticsSloList,
    responses=problems(400, 401, 403),
    summary="SLOs with their current figures",
)
async def list_slos(
    session: Session, principal: CurrentPrincipal, tenant_id: TenantId = None
) -> Response:
    """Each SLO with `current`, `met` and `error_budget_remaining` now."""
    principal.require(Permission.ANALYTICS_READ)
    data = await service.list_slos(session, principal=principal, tenant_id=tenant_id)
    return JSONResponse({"data": data})


@router.get(
    "/slos/{slo_id}",
    response_model=AnalyticsSlo,
    responses=problems(401, 403, 404),
    summary="An SLO with its current figures",
)
async def get_slo(slo_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """One SLO."""
    principal.require(Permission.ANALYTICS_READ)
    slo = await service.get_slo(session, principal=principal, slo_id=slo_id)
    return JSONResponse(await service.slo_dict(session, slo))


@router.delete(
    "/slos/{slo_id}",
    status_code=204,
    responses=problems(401, 403, 404),
    summary="Delete an SLO",
)
async def delete_slo(slo_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """Forget the SLO."""
    principal.require(Permission.ANALYTICS_WRITE)
    slo = await service.get_slo(session, principal=principal, slo_id=slo_id)
    await service.delete_slo(session, slo=slo)
    return Response(status_code=204)
