"""A gRPC client that knows nothing of our generated code: it learns
``orchestrion.v1.WorkflowService`` from the server's reflection service, as grpcurl or a
client in another language would, and speaks JSON (``google.protobuf.json_format``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

SERVICE = "orchestrion.v1.WorkflowService"
Metadata = Sequence[tuple[str, str]]


def grpc_target(caplog: pytest.LogCaptureFixture) -> str:
    """Where the platform's gRPC server listens, from its start-up log line."""
    for record in caplog.records:
        if record.name == "orchestrion.workflows.grpc" and "WorkflowService on" in record.message:
            return record.message.split(" on ", 1)[1].split()[0]
    pytest.fail("the gRPC server did not log its address")


def listen_for_grpc(caplog: pytest.LogCaptureFixture) -> None:
    """Capture the gRPC server's start-up line (call before starting the platform)."""
    caplog.set_level(logging.INFO, logger="orchestrion.workflows.grpc")


@dataclass
class Reflected:
    """The service's methods, each with its request and response classes."""

    services: list[str]
    methods: dict[str, tuple[type[Any], type[Any], bool]]


def _reflect(target: str, credentials: grpc.ChannelCredentials | None) -> Reflected:
    channel = (
        grpc.secure_channel(target, credentials)
        if credentials is not None
        else grpc.insecure_channel(target)
    )
    with channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        methods = {
            method.name: (
                message_factory.GetMessageClass(method.input_type),
                message_factory.GetMessageClass(method.output_type),
                method.server_streaming,
            )
            for method in service.methods
        }
    return Reflected(services=services, methods=methods)


class ReflectionClient:
    """Calls WorkflowService's methods by name with JSON requests and answers."""

    def __init__(
        self, target: str, reflected: Reflected, credentials: grpc.ChannelCredentials | None
    ) -> None:
        self.reflected = reflected
        self.channel = (
            grpc.aio.secure_channel(target, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(target)
        )

    @classmethod
    async def connect(
        cls, target: str, credentials: grpc.ChannelCredentials | None = None
    ) -> ReflectionClient:
        """Reflect (a blocking client, so in a thread: the server may run in this loop)."""
        reflected = await asyncio.to_thread(_reflect, target, credentials)
        return cls(target, reflected, credentials)

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()

    def _callable(self, method: str) -> tuple[Any, type[Any]]:
        request_class, response_class, streaming = self.reflected.methods[method]
        make = self.channel.unary_stream if streaming else self.channel.unary_unary
        call = make(
            f"/{SERVICE}/{method}",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )
        return call, request_class

    async def unary(
        self,
        method: str,
        body: dict[str, Any],
        metadata: Metadata = (),
        deadline: float | None = 30,
    ) -> dict[str, Any]:
        """One call; the answer as JSON (field names as in the proto)."""
        call, request_class = self._callable(method)
        request = json_format.ParseDict(body, request_class())
        answer = await call(request, metadata=metadata, timeout=deadline)
        return _json(answer)

    async def stream(
        self,
        method: str,
        body: dict[str, Any],
        metadata: Metadata = (),
        deadline: float | None = 30,
    ) -> AsyncIterator[dict[str, Any]]:
        """A server-streaming call's messages as JSON."""
        call, request_class = self._callable(method)
        request = json_format.ParseDict(body, request_class())
        async for answer in call(request, metadata=metadata, timeout=deadline):
            yield _json(answer)

    async def collect(
        self, method: str, body: dict[str, Any], metadata: Metadata = (), deadline: float = 30
    ) -> list[dict[str, Any]]:
        """Every message of a server-streaming call (``deadline``: seconds from now)."""
        return [m async for m in self.stream(method, body, metadata, deadline)]

    async def health(self, service: str = "") -> int:
        """The standard health check's status for ``service``."""
        stub = health_pb2_grpc.HealthStub(self.channel)
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        return int(answer.status)


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def bearer(token: str) -> Metadata:
    """The metadata of an authenticated call."""
    return (("authorization", f"Bearer {token}"),)
