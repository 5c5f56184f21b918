"""The rules of the realtime service: what each frame does, on which channel, for whom."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from orchestrion.kernel.auth.principal import Principal
from orchestrion.kernel.auth.revocation import Revocation
from orchestrion.kernel.errors import ValidationFailed
from orchestrion.services.realtime.backends.base import Backend, Envelope, Member
from orchestrion.services.realtime.channels import (
    Channel,
    check_presence,
    check_publish,
    check_subscribe,
    parse_channel,
)
from orchestrion.services.realtime.config import RealtimeSettings
from orchestrion.services.realtime.connection import Connection, Subscription
from orchestrion.services.realtime.errors import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_SERVICE_RESTART,
    CLOSE_UNAUTHENTICATED,
    AuthRefused,
    BadChannel,
    BadFrame,
    ChannelNotFound,
    MessageTooLarge,
    NotSubscribed,
    RateLimited,
    TooManySubscriptions,
)
from orchestrion.services.realtime.executions import ExecutionSource
from orchestrion.services.realtime.hub import Hub
from orchestrion.services.realtime.limits import Clock, TokenBucket
from orchestrion.services.realtime.schemas import (
    ClientFrame,
    InternalPublish,
    PingFrame,
    PresenceFrame,
    PublishFrame,
    SubscribeFrame,
    TokenData,
    UnsubscribeFrame,
    data_size,
    dumps,
    error_frame,
    welcome,
    with_ref,
)

logger = logging.getLogger("orchestrion.realtime")
#: Reads of what a subscription missed during a backend interruption, before giving up.
BACKFILL_ATTEMPTS = 5


def _credentials(connection: Connection) -> list[tuple[str, str]]:
    """What revocation notices concern this socket: its user, session and API key."""
    principal = connection.principal
    found = [("user", principal.user_id)]
    if principal.session_id:
        found.append(("session", principal.session_id))
    if principal.api_key_id:
        found.append(("api_key", principal.api_key_id))
    return found


class Realtime:
    """Connections of this process, their subscriptions, and the shared backend."""

    def __init__(
        self,
        *,
        config: RealtimeSettings,
        backend: Backend,
        executions: ExecutionSource,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.backend = backend
        self.executions = executions
        self.hub = Hub()
        self.connections: dict[str, Connection] = {}
        self.per_user: dict[str, int] = {}
        # Kept after a user's last socket leaves until refilled: reconnecting resets nothing.
        self.user_buckets: dict[str, TokenBucket] = {}
        # (kind, id) of a revocation notice → the sockets it closes (one lookup per notice).
        self.by_credential: dict[tuple[str, str], set[str]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self._backfills: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Connect the backend and keep this instance's presence entries alive."""
        await self.backend.start(self.hub.deliver, self.resume)
        self._refresher = asyncio.create_task(self._refresh_presence())

    async def stop(self) -> None:
        """Tell every client to reconnect (1012), then release the backend."""
        for connection in list(self.connections.values()):
            connection.close(CLOSE_SERVICE_RESTART, "service restarting")
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        for task in list(self._backfills):
            task.cancel()
        await self.backend.close()

    async def _refresh_presence(self) -> None:
        interval = self.config.presence_ttl_seconds / 3
        while True:
            await asyncio.sleep(interval)
            entries = [
                (key, member)
                for connection in self.connections.values()
                for key, member in connection.presence.items()
            ]
            try:
                await self.backend.refresh_presence(entries)
            except Exception:
                logger.warning("could not refresh presence", exc_info=True)

    # -- connections ---------------------------------------------------------------------

    def register(self, connection: Connection) -> None:
        """Count a new authenticated socket."""
        self.connections[connection.id] = connection
        connection.bucket = TokenBucket(
            rate=self.config.publish_rate, burst=self.config.publish_burst, clock=self.clock
        )
        if len(self.user_buckets) > 2 * len(self.per_user) + 1024:
            self.user_buckets = {
                user: bucket
                for user, bucket in self.user_buckets.items()
                if user in self.per_user or not bucket.full()
            }
        user = connection.principal.user_id
        self.per_user[user] = self.per_user.get(user, 0) + 1
        self._index(connection)
        self._arm_expiry(connection)

    def _index(self, connection: Connection) -> None:
        for credential in _credentials(connection):
            self.by_credential.setdefault(credential, set()).add(connection.id)

    def _unindex(self, connection: Connection) -> None:
        for credential in _credentials(connection):
            held = self.by_credential.get(credential)
            if held is not None:
                held.discard(connection.id)
                if not held:
                    del self.by_credential[credential]

    def _arm_expiry(self, connection: Connection) -> None:
        """Close the socket (4401) when its credential expires; a later one re-arms it."""
        if connection.expiry is not None:
            connection.expiry.cancel()
            connection.expiry = None
        expires_at = connection.principal.expires_at
        if expires_at is None:
            return
        connection.expiry = asyncio.get_running_loop().call_later(
            max(0.0, expires_at - time.time()),
            connection.close,
            CLOSE_UNAUTHENTICATED,
            'token expired: send {"type": "auth", "token"} with a fresh one before it does',
        )

    def reauthenticate(self, connection: Connection, principal: Principal, ref: Any) -> None:
        """A fresh credential for the same user and tenant: keep the socket past the old
        one's expiry (until the new one's); answered with ``welcome`` and its ``ref``."""
        current = connection.principal
        if (principal.subject, principal.tenant_id) != (current.subject, current.tenant_id):
            raise AuthRefused("a fresh token must be the same user's, in the same tenant")
        self._unindex(connection)
        connection.principal = principal
        self._index(connection)
        self._arm_expiry(connection)
        connection.push(dumps(with_ref(welcome(connection.id, principal.expires_at), ref)))

    def end_revoked(self, notice: Revocation) -> None:
        """Close (4401) the sockets opened with credentials a revocation notice ended:
        the session's, the API key's, or any of a user whose rights changed."""
        for connection_id in list(self.by_credential.get((notice.kind, notice.id), ())):
            connection = self.connections.get(connection_id)
            if connection is not None:
                connection.close(CLOSE_UNAUTHENTICATED, "credentials revoked")

    async def unregister(self, connection: Connection) -> None:
        """Forget a socket: its subscriptions and presence leave with it."""
        if self.connections.pop(connection.id, None) is None:
            return
        if connection.expiry is not None:
            connection.expiry.cancel()
        self._unindex(connection)
        user = connection.principal.user_id
        left = self.per_user.get(user, 1) - 1
        if left > 0:
            self.per_user[user] = left
        else:
            self.per_user.pop(user, None)
            bucket = self.user_buckets.get(user)
            if bucket is not None and bucket.full():
                del self.user_buckets[user]
        for subscription in list(connection.subscriptions.values()):
            await self._drop(connection, subscription)

    async def _drop(self, connection: Connection, subscription: Subscription) -> None:
        connection.subscriptions.pop(subscription.channel, None)
        self.hub.remove(subscription)
        try:
            await self.backend.unlisten(subscription.key)
            if connection.presence.pop(subscription.key, None) is not None:
                members = await self.backend.drop_presence(subscription.key, connection.id)
                if members is not None:
                    await self.backend.broadcast(
                        Envelope(key=subscription.key, kind="presence", payload=members)
                    )
        except Exception:
            logger.warning("could not release %s", subscription.key, exc_info=True)

    # -- frames --------------------------------------------------------------------------

    async def handle(self, connection: Connection, frame: ClientFrame) -> None:
        """Serve one client frame (raises :class:`FrameError` for the client to see)."""
        if isinstance(frame, SubscribeFrame):
            await self.subscribe(connection, frame)
        elif isinstance(frame, UnsubscribeFrame):
            await self.unsubscribe(connection, frame)
        elif isinstance(frame, PublishFrame):
            await self.publish(connection, frame)
        elif isinstance(frame, PresenceFrame):
            await self.presence(connection, frame)
        elif isinstance(frame, PingFrame):
            connection.push(dumps(with_ref({"type": "pong"}, frame.ref)))
        else:
            raise BadFrame("this socket is authenticated already")

    async def subscribe(self, connection: Connection, frame: SubscribeFrame) -> None:
        """Subscribe, replay what the client missed, then go live without gaps or duplicates."""
        principal = connection.principal
        channel = parse_channel(frame.channel)
        check_subscribe(principal, channel)
        old = connection.subscriptions.get(channel.name)
        if old is not None:
            await self._drop(connection, old)
        if len(connection.subscriptions) >= self.config.max_subscriptions:
            raise TooManySubscriptions(
                f"at most {self.config.max_subscriptions} channels per connection"
            )
        if channel.kind == "execution":
            await self._check_execution_tenant(channel, principal.tenant_id)
        subscription = Subscription(connection, channel.name, channel.key(principal.tenant_id))
        connection.subscriptions[channel.name] = subscription
        self.hub.add(subscription)  # buffers live frames from here on
        try:
            await self.backend.listen(subscription.key)
            if channel.kind == "execution":
                await self._replay_execution(subscription, channel, frame)
            else:
                await self._replay_history(subscription, frame)
        except BaseException:
            await self._drop(connection, subscription)
            raise
        subscription.go_live()

    async def _check_execution_tenant(self, channel: Channel, tenant_id: str) -> None:
        assert channel.ident is not None
        if await self.executions.tenant_of(channel.ident) != tenant_id:
            raise ChannelNotFound(f"no execution '{channel.ident}' in your tenant")

    def _subscribed(self, subscription: Subscription, latest: int, ref: Any) -> None:
        frame = {"type": "subscribed", "channel": subscription.channel, "seq": latest}
        subscription.connection.push(dumps(with_ref(frame, ref)))

    def _message(self, subscription: Subscription, seq: int, data: Any) -> None:
        frame = {"type": "message", "channel": subscription.channel, "seq": seq, "data": data}
        subscription.send(seq, dumps(frame))

    def _gap(self, subscription: Subscription, missing: tuple[int, int] | None) -> None:
        if missing is not None:
            first, last = missing
            gap = {"type": "gap", "channel": subscription.channel, "from": first, "to": last}
            subscription.connection.push(dumps(gap))

    async def _replay_history(self, subscription: Subscription, frame: SubscribeFrame) -> None:
        if frame.after is None:
            latest = await self.backend.latest(subscription.key)
            self._subscribed(subscription, latest, frame.ref)
        else:
            replay = await self.backend.history(subscription.key, frame.after)
            latest = replay.latest
            self._subscribed(subscription, latest, frame.ref)
            self._gap(subscription, replay.missing)
            for seq, data in replay.messages:
                self._message(subscription, seq, data)
        subscription.last = max(subscription.last, latest)
        members = await self.backend.members(subscription.key)
        if members:
            presence = {"type": "presence", "channel": subscription.channel, "members": members}
            subscription.connection.push(dumps(presence))

    async def _replay_execution(
        self, subscription: Subscription, channel: Channel, frame: SubscribeFrame
    ) -> None:
        assert channel.ident is not None
        events = await self.executions.events_after(channel.ident, frame.after or 0)
        latest = int(events[-1]["seq"]) if events else (frame.after or 0)
        self._subscribed(subscription, latest, frame.ref)
        if frame.after is not None:
            for event in events:
                self._message(subscription, int(event["seq"]), event)
        subscription.last = max(subscription.last, latest)

    def resume(self, keys: list[str]) -> None:
        """The backend's fan-out came back after an interruption: hold each live
        subscription's new frames while what it missed meanwhile is read from history,
        then flush them (the seq drops what the history already gave)."""
        for key in keys:
            for subscription in list(self.hub.subscriptions.get(key, {}).values()):
                if subscription.pending is not None:
                    continue  # still replaying its subscribe, which reads history after this
                subscription.pending = []
                task = asyncio.create_task(self._backfill(subscription))
                self._backfills.add(task)
                task.add_done_callback(self._backfills.discard)

    async def _backfill(self, subscription: Subscription) -> None:
        try:
            for attempt in range(BACKFILL_ATTEMPTS):
                try:
                    await self._read_missed(subscription)
                    break
                except Exception:
                    # A connection pooled before a Redis restart fails once, then is
                    # replaced: try again shortly.
                    if attempt + 1 == BACKFILL_ATTEMPTS:
                        # Live delivery goes on; what was missed stays missed (the client
                        # resumes with `after` when it notices).
                        logger.warning("could not backfill %s", subscription.key, exc_info=True)
                    else:
                        await asyncio.sleep(0.1 * 2**attempt)
        finally:
            if subscription.connection.subscriptions.get(subscription.channel) is subscription:
                subscription.go_live()
            else:
                subscription.pending = None  # unsubscribed meanwhile: nothing to flush

    async def _read_missed(self, subscription: Subscription) -> None:
        channel = parse_channel(subscription.channel)
        if channel.kind == "execution":
            assert channel.ident is not None
            for event in await self.executions.events_after(channel.ident, subscription.last):
                self._message(subscription, int(event["seq"]), event)
            return
        replay = await self.backend.history(subscription.key, subscription.last)
        self._gap(subscription, replay.missing)
        for seq, data in replay.messages:
            self._message(subscription, seq, data)

    async def unsubscribe(self, connection: Connection, frame: UnsubscribeFrame) -> None:
        """Leave a channel (and its presence); answered with ``unsubscribed``."""
        subscription = connection.subscriptions.get(frame.channel)
        if subscription is None:
            raise NotSubscribed(f"not subscribed to '{frame.channel}'")
        await self._drop(connection, subscription)
        answer = {"type": "unsubscribed", "channel": frame.channel}
        connection.push(dumps(with_ref(answer, frame.ref)))

    def _admit(self, connection: Connection, ref: Any) -> None:
        """Take a token from the connection's bucket and its user's, or refuse the frame;
        the ``max_rate_violations``-th refusal closes the socket with 1008."""
        config = self.config
        user = connection.principal.user_id
        user_bucket = self.user_buckets.get(user)
        if user_bucket is None:
            user_bucket = self.user_buckets[user] = TokenBucket(
                rate=config.user_publish_rate, burst=config.user_publish_burst, clock=self.clock
            )
        own = connection.bucket.wait()
        shared = user_bucket.wait()
        if not own and not shared:
            connection.bucket.take()
            user_bucket.take()
            return
        if own:
            what = (
                f"this connection may send {config.publish_rate:g} publish or presence frames "
                f"per second, {config.publish_burst} at once (ORCHESTRION_REALTIME__PUBLISH_RATE, "
                "ORCHESTRION_REALTIME__PUBLISH_BURST)"
            )
        else:
            what = (
                f"a user may send {config.user_publish_rate:g} publish or presence frames per "
                f"second across their connections, {config.user_publish_burst} at once "
                "(ORCHESTRION_REALTIME__USER_PUBLISH_RATE, "
                "ORCHESTRION_REALTIME__USER_PUBLISH_BURST)"
            )
        refused = RateLimited(f"rate limited: {what}", retry_after=max(own, shared))
        connection.rate_violations += 1
        if connection.rate_violations >= config.max_rate_violations:
            connection.push(error_frame(refused.code, refused.message, ref, **refused.fields()))
            connection.close(
                CLOSE_POLICY_VIOLATION,
                f"{config.max_rate_violations} rate-limited frames "
                "(ORCHESTRION_REALTIME__MAX_RATE_VIOLATIONS)",
            )
        raise refused

    async def publish(self, connection: Connection, frame: PublishFrame) -> None:
        """Store and fan out; the publisher's answer is the ``message`` with its ``ref``."""
        principal = connection.principal
        channel = parse_channel(frame.channel)
        check_publish(principal, channel)
        self._admit(connection, frame.ref)
        limit = self.config.max_message_bytes
        if data_size(frame.data) > limit:
            raise MessageTooLarge(
                f"a message's data is at most {limit} bytes of JSON "
                "(ORCHESTRION_REALTIME__MAX_MESSAGE_BYTES)"
            )
        key = channel.key(principal.tenant_id)
        if channel.name in connection.subscriptions:
            # The fan-out delivers the publisher's own copy, in order, carrying the ref.
            await self.backend.append(key, frame.data, origin=connection.id, ref=frame.ref)
            return
        seq = await self.backend.append(key, frame.data, origin=None, ref=None)
        answer = {"type": "message", "channel": channel.name, "seq": seq, "data": frame.data}
        connection.push(dumps(with_ref(answer, frame.ref)))

    async def presence(self, connection: Connection, frame: PresenceFrame) -> None:
        """Set this socket's state on a subscribed channel; members are broadcast on change."""
        channel = parse_channel(frame.channel)
        check_presence(connection.principal, channel)
        self._admit(connection, frame.ref)
        subscription = connection.subscriptions.get(channel.name)
        if subscription is None:
            raise NotSubscribed(f"subscribe to '{channel.name}' before setting presence there")
        key = subscription.key
        before = await self.backend.members(key)
        member = Member(connection.id, connection.principal.user_id, frame.state, time.time())
        connection.presence[key] = member
        members = await self.backend.set_presence(key, member)
        if members != before:
            await self.backend.broadcast(
                Envelope(
                    key=key, kind="presence", payload=members, origin=connection.id, ref=frame.ref
                )
            )
            return
        answer = {"type": "presence", "channel": channel.name, "members": members}
        connection.push(dumps(with_ref(answer, frame.ref)))

    # -- the platform's side -------------------------------------------------------------

    async def publish_internal(self, body: InternalPublish) -> int | None:
        """Feed a channel from the platform (the engine); the seq the message has, if any."""
        try:
            channel = parse_channel(body.channel)
        except BadChannel as exc:
            raise ValidationFailed(
                exc.message, errors=[{"loc": ["channel"], "msg": exc.message}]
            ) from None
        key = channel.key(body.tenant_id)
        if body.ephemeral:
            try:
                token = TokenData.model_validate(body.data)
            except ValueError:
                raise _invalid("data", 'an ephemeral message is {"step_id", "text"}') from None
            await self.backend.broadcast(
                Envelope(key=key, kind="token", payload=token.model_dump())
            )
            return None
        if body.seq is not None:
            if channel.kind != "execution":
                raise _invalid("seq", "only execution channels carry their own seq")
            await self.backend.broadcast(
                Envelope(key=key, kind="message", payload=body.data, seq=body.seq)
            )
            return body.seq
        if channel.kind == "execution":
            raise _invalid("seq", "execution messages carry the event's seq (or are ephemeral)")
        return await self.backend.append(key, body.data, origin=None, ref=None)


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"loc": ["body", field], "msg": message}])
