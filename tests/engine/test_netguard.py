"""The destination guard: which addresses are public, and that the checked address is dialled.

A real loopback server (a bare asyncio TCP server answering HTTP/1.1) counts the
connections it accepts; resolvers written in the test stand in for DNS, including one
that rebinds (a public answer first, loopback afterwards).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx
import pytest

from orchestrion.engine.netguard import (
    BlockedDestination,
    NetGuard,
    check_destination,
    guarded_client,
    is_public,
)

REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # link-local metadata
    "100.100.100.200",  # shared address space (100.64.0.0/10): a cloud's metadata service
    "100.64.0.1",
    "0.0.0.0",
    "192.0.0.170",
    "198.18.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "224.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:169.254.169.254",
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo of 127.0.0.1
    "::127.0.0.1",  # IPv4-compatible (deprecated)
]
ALLOWED = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "2002:808:808::1", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", REFUSED)
def test_non_global_addresses_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_global_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host", ["100.100.100.200", "2002:7f00:1::", "[::ffff:127.0.0.1]", "64:ff9b::a00:1"]
)
async def test_check_destination_refuses_ranges_the_old_check_let_through(host: str) -> None:
    with pytest.raises(BlockedDestination, match="not a public address"):
        await check_destination(host, 80, ())


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0177.0.0.1", "127.1", "0x7f000001"])
async def test_odd_ipv4_notations_are_refused(host: str) -> None:
    with pytest.raises(BlockedDestination, match="ambiguous notation"):
        await check_destination(host, 80, ["127.0.0.0/8"])


async def test_allow_list_takes_hosts_and_networks() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["10.0.0.7"]

    guard = NetGuard(["internal.example", "192.168.0.0/16", ""], resolver=resolver)
    assert await guard.resolve("internal.example", 80) == [ipaddress.ip_address("10.0.0.7")]
    assert await guard.resolve("192.168.4.4", 80) == [ipaddress.ip_address("192.168.4.4")]
    with pytest.raises(BlockedDestination, match="ORCHESTRION_ENGINE__HTTP_ALLOWLIST"):
        await guard.resolve("other.example", 80)


async def test_one_bad_answer_among_many_refuses_the_name() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "127.0.0.1"]

    with pytest.raises(BlockedDestination, match=r"127\.0\.0\.1"):
        await NetGuard(resolver=resolver).resolve("mixed.example", 80)


@dataclass
class Loopback:
    """A bare HTTP/1.1 server on 127.0.0.1 counting the connections it accepts."""

    port: int = 0
    connections: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            body = b"reached loopback"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def loopback() -> AsyncIterator[Loopback]:
    state = Loopback()
    state.server = await asyncio.start_server(state._handle, "127.0.0.1", 0)
    state.port = state.server.sockets[0].getsockname()[1]
    async with state.server:
        yield state


class Rebinding:
    """Answers ``first`` on the first lookup and ``then`` on every later one."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.calls = 0

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls += 1
        return [self.answers[min(self.calls, 2) - 1]]


class Recording(httpcore.AsyncNetworkBackend):
    """Records where it is asked to connect; connects only to loopback."""

    def __init__(self) -> None:
        self.dialled: list[str] = []
        self.real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's signature)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.dialled.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"no route to {host} in this test")
        return await self.real.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self.real.sleep(seconds)


async def test_a_rebinding_name_never_reaches_loopback(loopback: Loopback) -> None:
    """Checked public, then answering loopback: the connection goes to the checked address."""
    resolver = Rebinding("93.184.215.14", "127.0.0.1")
    backend = Recording()
    async with guarded_client(NetGuard(resolver=resolver), backend=backend) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://rebind.example:{loopback.port}/")
    assert backend.dialled == ["93.184.215.14"]
    assert resolver.calls == 1
    assert loopback.connections == 0


async def test_the_checked_address_is_the_one_dialled(loopback: Loopback) -> None:
    """Allow-listed 127.0.0.1 first, then 127.0.0.2 (where nothing listens): the request lands."""
    resolver = Rebinding("127.0.0.1", "127.0.0.2")
    guard = NetGuard(["127.0.0.1/32"], resolver=resolver)
    async with guarded_client(guard) as client:
        response = await client.get(f"http://service.example:{loopback.port}/path")
    assert response.text == "reached loopback"
    assert resolver.calls == 1
    assert loopback.connections == 1


async def test_the_host_header_keeps_the_name(loopback: Loopback) -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    guard = NetGuard(["127.0.0.1"], resolver=Rebinding("127.0.0.1", "127.0.0.1"))
    async with server, guarded_client(guard) as client:
        response = await client.get(f"http://named.example:{port}/")
    assert response.status_code == 204
    assert f"host: named.example:{port}".encode() in seen[0].lower()


async def test_a_refused_name_is_never_dialled(loopback: Loopback) -> None:
    backend = Recording()
    async with guarded_client(NetGuard(), backend=backend) as client:
        with pytest.raises(BlockedDestination):
            await client.get(f"http://127.0.0.1:{loopback.port}/")
    assert backend.dialled == []
    assert loopback.connections == 0


async def test_cookies_are_not_kept(loopback: Loopback) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        cookie = b"yes" if b"cookie:" in request.lower() else b"no"
        writer.write(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: session=tenant-a; Path=/\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(cookie), cookie)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, guarded_client(NetGuard(["127.0.0.1"])) as client:
        first = await client.get(f"http://127.0.0.1:{port}/")
        second = await client.get(f"http://127.0.0.1:{port}/")
    assert (first.text, second.text) == ("no", "no")
