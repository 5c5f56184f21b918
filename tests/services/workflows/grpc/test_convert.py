"""Messages, numbers and error codes between the service and gRPC."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct

from orchestrion.engine.runtime.limits import InputsTooLarge, TooManyActiveExecutions
from orchestrion.kernel.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    OrchestrionError,
    ServiceUnavailable,
    Unauthenticated,
    ValidationFailed,
)
from orchestrion.services.workflows.errors import ExecutionNotFound
from orchestrion.services.workflows.grpc import convert
from orchestrion.services.workflows.grpc.auth import bearer


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (BadRequest("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ValidationFailed("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (Forbidden("x"), grpc.StatusCode.PERMISSION_DENIED),
        (ExecutionNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (Conflict("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (InputsTooLarge("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (TooManyActiveExecutions("x"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ServiceUnavailable("x"), grpc.StatusCode.UNAVAILABLE),
        (OrchestrionError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_map_to_status_codes(error: OrchestrionError, code: grpc.StatusCode) -> None:
    assert convert.status_code(error) == code


def test_details_carry_field_errors_and_retry_after_travels() -> None:
    error = ValidationFailed("inputs do not fit", errors=[{"loc": ["x"], "msg": "not an integer"}])
    assert convert.details(error) == 'inputs do not fit [{"loc":["x"],"msg":"not an integer"}]'
    assert convert.retry_after(TooManyActiveExecutions("busy"))[0][0] == "retry-after"
    assert convert.retry_after(error) == ()


def test_whole_numbers_come_back_as_integers() -> None:
    message = Struct()
    message.update({"n": 3, "f": 1.5, "deep": [{"m": 2}], "big": 2.0**60, "s": "3"})
    assert convert.inputs_from(message) == {
        "n": 3,
        "f": 1.5,
        "deep": [{"m": 2}],
        "big": 2.0**60,
        "s": "3",
    }
    assert isinstance(convert.inputs_from(message)["n"], int)


def test_status_of_an_execution() -> None:
    body = {"id": "e", "status": "failed", "outputs": None, "error": {"message": "boom"}}
    status = convert.status_message(body)
    assert (status.execution_id, status.status, status.error) == ("e", "failed", "boom")
    assert not status.HasField("outputs")
    done = convert.status_message({"id": "e", "status": "succeeded", "outputs": {"a": 1}})
    assert dict(done.outputs) == {"a": 1.0}
    assert done.error == ""


@pytest.mark.parametrize(
    ("metadata", "credential"),
    [
        ([("authorization", "Bearer abc")], "abc"),
        ([("Authorization", "bearer  orn_key ")], "orn_key"),
        ([("x-other", "1"), ("authorization", b"Bearer t")], "t"),
    ],
)
def test_bearer_reads_the_credential(metadata: list[tuple[str, object]], credential: str) -> None:
    assert bearer(metadata) == credential


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        [],
        [("authorization", "Basic abc")],
        [("authorization", "Bearer ")],
        [("authorization", "Bearer a"), ("authorization", "Bearer b")],
    ],
)
def test_bearer_refuses_what_is_not_one_bearer_credential(metadata: object) -> None:
    with pytest.raises(Unauthenticated):
        bearer(metadata)  # type: ignore[arg-type]
