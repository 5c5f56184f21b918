"""HTTP routes of notifications: preferences, the inbox and event subscriptions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from orchestrion.kernel.auth.permissions import Permission
from orchestrion.kernel.http.deps import CurrentPrincipal, Session
from orchestrion.kernel.http.etag import check_if_match, resource_response
from orchestrion.kernel.http.lists import ListPage, list_body, list_parameters, parse_list_query
from orchestrion.kernel.http.openapi import not_modified
from orchestrion.services.notifications import repository, service
from orchestrion.services.notifications.responses import problems
from orchestrion.services.notifications.schemas import (
    InboxItem,
    Preferences,
    Subscription,
    SubscriptionCreate,
)

PREFIX = "/api/v1/notifications"
router = APIRouter(prefix=PREFIX, tags=["notifications"])


# --- preferences -------------------------------------------------------------------------


@router.get(
    "/preferences",
    response_model=Preferences,
    responses={**problems(401, 403), **not_modified()},
    summary="The caller's notification preferences",
)
async def get_preferences(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """The channels the caller muted."""
    principal.require(Permission.NOTIFICATIONS_READ)
    return resource_response(request, await service.get_preferences(session, principal=principal))


@router.put(
    "/preferences",
    response_model=Preferences,
    responses=problems(401, 403, 412, 422),
    summary="Replace the caller's notification preferences",
)
async def put_preferences(
    data: Preferences, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Mute channels: what the caller sends or subscribes to on one, and in-app messages
    to the caller when `in_app` is muted, end `failed` with `last_error` saying so."""
    principal.require(Permission.NOTIFICATIONS_READ)
    check_if_match(request, await service.get_preferences(session, principal=principal))
    body = await service.set_preferences(
        session, principal=principal, muted=list(data.muted_channels)
    )
    return resource_response(request, body)


# --- inbox ---------------------------------------------------------------------------------


@router.get(
    "/inbox",
    response_model=ListPage[InboxItem],
    responses=problems(400, 401, 403),
    summary="The caller's in-app messages",
    openapi_extra=list_parameters(repository.INBOX_LIST),
)
async def list_inbox(request: Request, session: Session, principal: CurrentPrincipal) -> Response:
    """Newest first; `read=false` lists the unread ones."""
    principal.require(Permission.NOTIFICATIONS_READ)
    query = parse_list_query(request, repository.INBOX_LIST)
    page = await service.list_inbox(session, principal=principal, query=query)
    items = [service.inbox_to_dict(item) for item in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.post(
    "/inbox/{item_id}/read",
    response_model=InboxItem,
    responses=problems(401, 403, 404),
    summary="Mark an in-app message read",
)
async def mark_read(item_id: str, session: Session, principal: CurrentPrincipal) -> Response:
    """The message, `read` from now on (marking it again changes nothing)."""
    principal.require(Permission.NOTIFICATIONS_READ)
    item = await service.mark_read(session, principal=principal, item_id=item_id)
    return JSONResponse(service.inbox_to_dict(item))


# --- subscriptions -------------------------------------------------------------------------


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=Subscription,
    responses=problems(400, 401, 403, 422),
    summary="Subscribe to platform events",
)
async def subscribe(
    data: SubscriptionCreate, session: Session, principal: CurrentPrincipal
) -> Response:
    """Each matching event of the tenant (of `workflow_id` only, if given) sends one
    notification on `channel` to `to`, rendered from `template` or a default message;
    a redelivered event sends nothing more."""
    principal.require(Permission.NOTIFICATIONS_WRITE)
    subscription = await service.subscribe(session, principal=principal, data=data)
    return JSONResponse(
        service.subscription_to_dict(subscription),
        status_code=201,
        headers={"Location": f"{PREFIX}/subscriptions/{subscription.id}"},
    )


@router.get(
    "/subscriptions",
    response_model=ListPage[Subscription],
    responses=problems(400, 401, 403),
    summary="List subscriptions",
    openapi_extra=list_parameters(repository.SUBSCRIPTION_LIST),
)
async def list_subscriptions(
    request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """The tenant's subscriptions; filters `event`, `channel`, `workflow_id`."""
    principal.require(Permission.NOTIFICATIONS_READ)
    query = parse_list_query(request, repository.SUBSCRIPTION_LIST)
    page = await service.list_subscriptions(session, principal=principal, query=query)
    items = [service.subscription_to_dict(s) for s in page.rows]
    return JSONResponse(list_body(request, items, query, page))


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=Subscription,
    responses={**problems(401, 403, 404), **not_modified()},
    summary="Get a subscription",
)
async def get_subscription(
    subscription_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """One subscription, with its ETag."""
    principal.require(Permission.NOTIFICATIONS_READ)
    subscription = await service.get_subscription(
        session, principal=principal, subscription_id=subscription_id
    )
    return resource_response(request, service.subscription_to_dict(subscription))


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    responses=problems(401, 403, 404, 412),
    summary="Delete a subscription",
)
async def delete_subscription(
    subscription_id: str, request: Request, session: Session, principal: CurrentPrincipal
) -> Response:
    """Stop sending on its events (notifications it sent stay)."""
    principal.require(Permission.NOTIFICATIONS_WRITE)
    subscription = await service.get_subscription(
        session, principal=principal, subscription_id=subscription_id
    )
    check_if_match(request, service.subscription_to_dict(subscription))
    await service.unsubscribe(session, subscription=subscription)
    return Response(status_code=204)
