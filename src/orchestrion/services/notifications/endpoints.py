"""HTTP routes of notifications: sends, templates and webhook secrets."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import resource_response
from orchestrion.kernel.http.idempotency import run_idempotent
from orchestrion.kernel.http.lists import ListPage, list_body, list_parameters, parse_list_query
from orchestrion.kernel.http.openapi import not_modified
from orchestrion.services.notifications import repository, service
from orchestrion.services.notifications.responses import problems
from orchestrion.services.notifications.schemas import (
    Notification,
    NotificationAccepted,
    NotificationCreate,
    NotificationTemplate,
    TemplateCreate,
    WebhookSecretCreated,
    WebhookSecretList,
)
from orchestrion.services.notifications.service import NotificationsRuntime

PREFIX = "/api/v1/notifications"
router = APIRouter(prefix=PREFIX, tags=["notifications"])


def _runtime(request: Request) -> NotificationsRuntime:
    runtime: NotificationsRuntime = request.app.state.notifications
    return runtime


@router.post(
    "",
    status_code=202,
    response_model=NotificationAccepted,
    responses=problems(400, 401, 403, 409, 422),
    summary="Send a notification",
)
async def send_notification(
    data: NotificationCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Queue a message on its channel (`Idempotency-Key`: the same key and body give the
    same notification). A `template` is rendered now; delivery, retries and the outcome
    show on `GET /api/v1/notifications/{id}`."""
    principal.require(Permission.NOTIFICATIONS_WRITE)
    runtime = _runtime(request)

    async def produce() -> tuple[int, Any]:
        notification = await service.send(session, runtime, principal=principal, data=data)
        return 202, {"id": notification.id, "status": notification.status}

    response = await run_idempotent(
        session,
        request=request,
        scope=f"{principal.tenant_id}:{principal.subject}:POST:{PREFIX}",
        payload=data.model_dump(mode="json"),
        produce=produce,
    )
    if response.status_code == 202:
        response.headers["Location"] = f"{PREFIX}/{_id_of(response)}"
    return response


def _id_of(response: Response) -> str:
    return str(json.loads(bytes(response.body))["id"])


@router.get(
    "",
    response_model=ListPage[Notification],
    responses=problems(400, 401, 403),
    summary="List notifications",
    openapi_extra=list_parameters(repository.NOTIFICATION_LIST),
)
async def list_notifications(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """The tenant's notifications, newest first; filters `channel`, `status`,
    `subscription_id`."""
    principal.require(Permission.NOTIFICATIONS_READ)
    query = parse_list_query(request, repository.NOTIFICATION_LIST)
    page = await service.list_notifications(session, principal=principal, query=query)
    items = [service.to_dict(n) for n in page.rows]
    return JSONResponse(list_body(request, items, query, page))


# --- templates -------------------------------------------------------------------------


@router.post(
    "/templates",
    status_code=201,
    response_model=NotificationTemplate,
    responses=problems(400, 401, 403, 422),
    summary="Create a template, or a new version of one",
)
async def create_template(
    data: TemplateCreate, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Jinja sources of a subject and a body for one channel; an existing name on that
    channel gets its next version (sends use the newest)."""
    principal.require(Permission.NOTIFICATIONS_WRITE)
    template = await service.create_template(
        session,
        principal=principal,
        data=data,
        max_chars=_runtime(request).config.max_rendered_chars,
    )
    body = service.template_to_dict(template)
    return JSONResponse(
        body, status_code=201, headers={"Location": f"{PREFIX}/templates/{template.id}"}
    )


@router.get(
    "/templates",
    response_model=ListPage[NotificationTemplate],
    responses=problems(400, 401, 403),
    summary="List template versions",
    openapi_extra=list_parameters(repository.TEMPLATE_LIST),
)
async def list_templates(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Every version of the tenant's templates; filters `name`, `channel`."""
    principal.require(Permission.NOTIFICATIONS_READ)
    query = parse_list_query(request, repository.TEMPLATE_LIST)
    page = await service.list_templates(session, principal=principal, query=query)
    items = [service.template_to_dict(t) for t in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get(
    "/templates/{template_id}",
    response_model=NotificationTemplate,
    responses={**problems(401, 403, 404), **not_modified()},
    summary="Get a template version",
)
async def get_template(
    template_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One template version, with its ETag."""
    principal.require(Permission.NOTIFICATIONS_READ)
    template = await service.get_template(session, principal=principal, template_id=template_id)
    return resource_response(request, service.template_to_dict(template))


# --- webhook secrets ---------------------------------------------------------------------


@router.post(
    "/webhook-secrets",
    status_code=201,
    response_model=WebhookSecretCreated,
    responses=problems(401, 403),
    summary="Create (rotate) the tenant's webhook signing secret",
)
async def rotate_secret(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """A new secret, shown once. Webhooks are signed with it from now on, and with the
    one it replaces for `webhook_secret_grace_seconds` more (several signatures)."""
    principal.require(Permission.NOTIFICATIONS_WRITE)
    body = await service.rotate_secret(session, _runtime(request), principal=principal)
    return JSONResponse(body, status_code=201)


@router.get(
    "/webhook-secrets",
    response_model=WebhookSecretList,
    responses=problems(401, 403),
    summary="List the tenant's webhook secrets (not their values)",
)
async def list_secrets(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """Each secret's dates and whether it still signs, newest first."""
    principal.require(Permission.NOTIFICATIONS_READ)
    data = await service.list_secrets(session, _runtime(request), principal=principal)
    return JSONResponse({"data": data})


# Last: ``/{notification_id}`` would otherwise take the paths above (and the other router's).
item_router = APIRouter(prefix=PREFIX, tags=["notifications"])


@item_router.get(
    "/{notification_id}",
    response_model=Notification,
    responses={**problems(401, 403, 404), **not_modified()},
    summary="Get a notification and its delivery status",
)
async def get_notification(
    notification_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """`status` (`queued`, `sending`, `delivered`, `failed`), `attempts`, `last_error`,
    `delivered_at`."""
    principal.require(Permission.NOTIFICATIONS_READ)
    notification = await service.get_notification(
        session, principal=principal, notification_id=notification_id
    )
    return resource_response(request, service.to_dict(notification))
