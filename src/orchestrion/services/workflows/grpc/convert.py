"""Between the service's JSON shapes and the ``orchestrion.v1`` messages, and from our
errors to gRPC status codes.

``google.protobuf.Struct`` holds JSON, with one difference: its numbers are doubles. So
inputs arriving as ``3.0`` become ``3`` again (a JSON Schema ``integer`` then accepts
them), and integers past 2**53 cannot travel through a Struct exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from orchestrion.engine import ExecutionEvent
from orchestrion.kernel.errors import OrchestrionError
from orchestrion.services.workflows.grpc.v1 import workflows_pb2 as pb

#: Doubles represent every integer up to this one exactly.
_EXACT = 2**53
#: The gRPC code for each HTTP status our errors carry (the rest: by class of status).
_CODES: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    # An archived workflow, a key already in use: the system is not in a state to do it.
    409: grpc.StatusCode.FAILED_PRECONDITION,
    412: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    502: grpc.StatusCode.UNAVAILABLE,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
_MAX_DETAILS = 2000


def status_code(error: OrchestrionError) -> grpc.StatusCode:
    """The gRPC code of one of our errors."""
    code = _CODES.get(error.status_code)
    if code is not None:
        return code
    if 400 <= error.status_code < 500:
        return grpc.StatusCode.FAILED_PRECONDITION
    return grpc.StatusCode.INTERNAL


def details(error: OrchestrionError) -> str:
    """The error's detail, with its field errors (what a problem+json body would list)."""
    text = error.detail
    if error.errors:
        text += " " + json.dumps(error.errors, separators=(",", ":"), default=str)
    return text[:_MAX_DETAILS]


def retry_after(error: OrchestrionError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata telling when to try again (a 429's ``Retry-After``), if any."""
    value = error.headers.get("Retry-After")
    return (("retry-after", value),) if value else ()


def _whole_numbers(value: Any) -> Any:
    """``value`` with integral doubles turned back into integers."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def inputs_from(message: Struct) -> dict[str, Any]:
    """A request's inputs as the JSON object the REST API would have received."""
    as_dict = json_format.MessageToDict(message)
    return dict(_whole_numbers(as_dict))


def struct(value: Any) -> Struct | None:
    """A JSON object as a Struct; None for anything else (``null``, a list, a string)."""
    if not isinstance(value, Mapping):
        return None
    message = Struct()
    message.update(value)
    return message


def event_message(execution_id: str, event: ExecutionEvent) -> pb.ExecutionEvent:
    """One log entry as a stream message (the fields of ``GET .../events``' ``data``)."""
    message = pb.ExecutionEvent(
        execution_id=execution_id,
        seq=event.seq,
        type=event.type,
        step_id=event.step_id or "",
        data=struct(event.data) or Struct(),
    )
    at = event.at if event.at.tzinfo is not None else event.at.replace(tzinfo=UTC)
    message.at.FromDatetime(at)
    return message


def _error_text(error: Any) -> str:
    if not error:
        return ""
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return json.dumps(error, separators=(",", ":"), default=str)


def status_message(execution: Mapping[str, Any]) -> pb.StatusResponse:
    """An execution (the REST shape) as a :class:`StatusResponse`."""
    return pb.StatusResponse(
        execution_id=str(execution["id"]),
        status=str(execution["status"]),
        outputs=struct(execution.get("outputs")),
        error=_error_text(execution.get("error")),
    )
