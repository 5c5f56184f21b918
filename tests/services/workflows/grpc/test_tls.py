"""gRPC over TLS with ``ORCHESTRION_GRPC__TLS_CERT_FILE`` and ``..._KEY_FILE``."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from pydantic import ValidationError

from orchestrion.settings import Settings
from tests.conftest import make_settings
from tests.fixtures.tls import self_signed
from tests.services.workflows.grpc.conftest import running_platform
from tests.services.workflows.grpc.reflected import SERVICE


async def test_tls_serves_only_tls(
    tmp_path: Path, sqlite_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    cert_file, key_file = self_signed(tmp_path)
    certificate = cert_file.read_bytes()
    settings = sqlite_settings.model_copy(
        update={
            "grpc": sqlite_settings.grpc.model_copy(
                update={"tls_cert_file": cert_file, "tls_key_file": key_file}
            )
        }
    )
    async for platform in running_platform(settings, caplog, trusted=certificate):
        assert await platform.grpc.health(SERVICE) == 1
        workflow_id = await platform.workflow([{"id": "t", "type": "transform", "with": {"v": 1}}])
        streamed = await platform.grpc.collect(
            "ExecuteWorkflow", {"workflow_id": workflow_id}, platform.admin_metadata
        )
        assert streamed[-1]["type"] == "execution.succeeded"
        async with grpc.aio.insecure_channel(platform.target) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await plain.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        untrusting = await _refused(platform.target)
        assert untrusting == grpc.StatusCode.UNAVAILABLE


async def _refused(target: str) -> grpc.StatusCode:
    """The code a TLS client that does not trust the certificate gets."""
    async with grpc.aio.secure_channel(target, grpc.ssl_channel_credentials()) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
    return raised.value.code()


def test_tls_needs_both_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tls_key_file"):
        make_settings(tmp_path, "sqlite+aiosqlite://", grpc={"tls_cert_file": tmp_path / "c"})
