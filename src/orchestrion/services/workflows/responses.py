"""What the workflows routes declare about their answers in OpenAPI.

``problems(404, 409)`` documents error statuses as ``application/problem+json``
(re-exported from :mod:`orchestrion.kernel.http.openapi`, which every service shares).
``Items[T]`` types the unpaginated ``{"data": [...]}`` answers; paginated lists use
:class:`orchestrion.kernel.http.lists.ListPage`.

Routes answer with the JSON their service functions build (``JSONResponse``,
``resource_response``), so bytes and ETags stay exactly what they were; the declared
``response_model`` is the contract, checked against real answers by the tests.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel
from starlette.responses import StreamingResponse

from orchestrion.kernel.http.openapi import COMPONENTS, not_modified, problems

__all__ = ["COMPONENTS", "EventStream", "Item", "Items", "not_modified", "problems"]

Item = TypeVar("Item")


class EventStream(StreamingResponse):
    """A ``text/event-stream`` answer (Server-Sent Events), for ``response_class``.

    Not FastAPI's ``EventSourceResponse``: FastAPI takes a route declaring that one to
    be a generator of events, while these routes build and return their own stream.
    """

    media_type = "text/event-stream"


class Items(BaseModel, Generic[Item]):
    """An unpaginated list: ``{"data": [...]}``."""

    data: list[Item]
