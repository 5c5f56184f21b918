"""Sending one message on its channel: SMTP, signed webhooks, SMS and push providers.

Every sender either returns :class:`Sent` or raises :class:`DeliveryFailed`, which says
whether trying again may help (``transient``): a network error, a timeout, an HTTP 408,
429 or 5xx, an SMTP 4xx reply. Anything else (an SMTP 5xx, another HTTP 4xx, a refused
destination, a channel without its provider configured) fails for good at once.

Webhooks follow Standard Webhooks: the body is signed with every secret that signs now
(the current one, and a rotated one during its grace period), space-separated in
``webhook-signature``; ``webhook-id`` is the notification's id, the same on every retry,
so receivers drop repeats. The client resolves the URL's host once, refuses private
ranges unless allow-listed, and connects to the address it checked (``NetGuard``).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlsplit

import aiosmtplib
import httpx
from standardwebhooks import Webhook

from orchestrion import __version__
from orchestrion.engine import BlockedDestination, NetGuard, guarded_client
from orchestrion.kernel.http.tls import client_context
from orchestrion.kernel.ids import isoformat, utcnow
from orchestrion.settings import NotificationsSettings

USER_AGENT = f"Orchestrion-Notifications/{__version__}"
#: HTTP statuses worth another attempt.
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryFailed(Exception):
    """A send that did not go through; ``transient`` when a later attempt may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class Sent:
    """A send the channel accepted; ``provider_id`` is its id there, if it gave one."""

    provider_id: str | None = None


@dataclass(frozen=True)
class Message:
    """What a sender needs of a notification."""

    id: str
    tenant_id: str
    channel: str
    to: str
    subject: str | None
    body: str
    data: dict[str, Any]
    event: str | None
    created_at: datetime
    #: Webhook secrets that sign now, newest first (webhooks only).
    secrets: Sequence[str] = field(default_factory=tuple)


def webhook_body(message: Message) -> bytes:
    """The JSON a webhook posts (the same bytes on every attempt)."""
    payload = {
        "type": message.event or "notification",
        "timestamp": isoformat(message.created_at),
        "data": {
            "notification_id": message.id,
            "subject": message.subject,
            "body": message.body,
            "data": message.data,
        },
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(message_id: str, at: datetime, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header: one ``v1,<base64>`` per secret."""
    text = body.decode()
    return " ".join(Webhook(secret).sign(message_id, at, text) for secret in secrets)


class Channels:
    """The senders of every channel, with their HTTP clients (close with :meth:`aclose`)."""

    def __init__(self, config: NotificationsSettings, *, guard: NetGuard | None = None) -> None:
        self.config = config
        timeout = config.send_timeout_seconds
        self.guard = guard or NetGuard(config.webhook_allowlist)
        self.webhooks = guarded_client(self.guard, timeout=timeout)
        self.providers = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, verify=client_context()
        )

    async def aclose(self) -> None:
        """Close the HTTP clients."""
        await self.webhooks.aclose()
        await self.providers.aclose()

    async def send(self, message: Message) -> Sent:
        """Send ``message`` on its channel (raises :class:`DeliveryFailed`)."""
        if message.channel == "email":
            return await self.email(message)
        if message.channel == "webhook":
            return await self.webhook(message)
        if message.channel == "sms":
            return await self.sms(message)
        if message.channel == "push":
            return await self.push(message)
        # in_app: the worker stores it in the inbox itself (one transaction with the status).
        return Sent()

    # --- email -----------------------------------------------------------------------

    async def email(self, message: Message) -> Sent:
        """One email over SMTP (SMTPS, STARTTLS or plain, as the URL and settings say)."""
        config = self.config
        if not config.smtp_url:
            raise DeliveryFailed(
                "email is not configured: set ORCHESTRION_NOTIFICATIONS__SMTP_URL", transient=False
            )
        url = urlsplit(config.smtp_url)
        if url.scheme not in ("smtp", "smtps") or not url.hostname:
            raise DeliveryFailed(f"unsupported SMTP URL scheme {url.scheme!r}", transient=False)
        secure = url.scheme == "smtps"
        password = config.smtp_password.get_secret_value() if config.smtp_password else None
        mail = EmailMessage()
        mail["From"] = config.smtp_from
        mail["To"] = message.to
        # A header never holds a line break (header injection); folding is the library's.
        mail["Subject"] = " ".join((message.subject or "").split())
        mail["Message-ID"] = f"<{message.id}@orchestrion>"
        mail.set_content(message.body)
        try:
            await aiosmtplib.send(
                mail,
                hostname=url.hostname,
                port=url.port or (465 if secure else 25),
                username=config.smtp_username or (unquote(url.username) if url.username else None),
                password=password or (unquote(url.password) if url.password else None),
                use_tls=secure,
                start_tls=False if secure else config.smtp_starttls,
                tls_context=ssl.create_default_context(cafile=config.smtp_ca_file),
                timeout=config.send_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refused.code for refused in exc.recipients]
            raise DeliveryFailed(
                f"SMTP refused the recipient: {exc}", transient=all(400 <= c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryFailed(
                f"SMTP answered {exc.code}: {exc.message}", transient=400 <= exc.code < 500
            ) from None
        except (aiosmtplib.SMTPNotSupported, ssl.SSLError) as exc:
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}", transient=False) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            # A TLS failure (an untrusted certificate) will not pass on a later attempt.
            tls = isinstance(exc.__cause__, ssl.SSLError)
            raise DeliveryFailed(f"SMTP: {type(exc).__name__}: {exc}", transient=not tls) from None
        return Sent(provider_id=mail["Message-ID"])

    # --- webhooks --------------------------------------------------------------------

    async def webhook(self, message: Message) -> Sent:
        """One signed POST to the URL in ``to``."""
        if not message.secrets:
            raise DeliveryFailed(
                "the tenant has no webhook secret: create one with "
                "POST /api/v1/notifications/webhook-secrets",
                transient=False,
            )
        body = webhook_body(message)
        now = utcnow()
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": message.id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": sign(message.id, now, body, message.secrets),
        }
        try:
            # Only the status matters: the receiver's body is never read.
            async with self.webhooks.stream(
                "POST", message.to, content=body, headers=headers
            ) as response:
                status = response.status_code
        except BlockedDestination as exc:
            # The guard names the engine's allow-list; webhooks have their own.
            reason = str(exc).replace(
                "ORCHESTRION_ENGINE__HTTP_ALLOWLIST", "ORCHESTRION_NOTIFICATIONS__WEBHOOK_ALLOWLIST"
            )
            raise DeliveryFailed(
                f"webhook destination refused: {reason}", transient=False
            ) from None
        except httpx.InvalidURL as exc:
            raise DeliveryFailed(f"not a usable URL: {exc}", transient=False) from None
        except httpx.TimeoutException:
            raise DeliveryFailed(
                f"the webhook timed out after {self.config.send_timeout_seconds:g}s", transient=True
            ) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                f"the webhook failed: {type(exc).__name__}: {exc}", transient=True
            ) from None
        if 200 <= status < 300:
            return Sent()
        raise DeliveryFailed(f"the webhook answered {status}", transient=status in _TRANSIENT_HTTP)

    # --- providers -------------------------------------------------------------------

    async def _provider(self, name: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self.providers.post(url, **kwargs)
        except httpx.TimeoutException:
            raise DeliveryFailed(f"the {name} provider timed out", transient=True) from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(
                f"the {name} provider failed: {type(exc).__name__}: {exc}", transient=True
            ) from None
        if not 200 <= response.status_code < 300:
            raise DeliveryFailed(
                f"the {name} provider answered {response.status_code}: {response.text[:300]}",
                transient=response.status_code in _TRANSIENT_HTTP,
            )
        try:
            answer = response.json()
        except ValueError:
            return {}
        return answer if isinstance(answer, dict) else {}

    async def sms(self, message: Message) -> Sent:
        """One text through a Twilio-compatible API (form POST, basic auth)."""
        config = self.config
        if not (config.sms_base_url and config.sms_account_sid and config.sms_auth_token):
            raise DeliveryFailed(
                "SMS is not configured: set ORCHESTRION_NOTIFICATIONS__SMS_BASE_URL, "
                "__SMS_ACCOUNT_SID and __SMS_AUTH_TOKEN",
                transient=False,
            )
        sid = config.sms_account_sid
        form = {"To": message.to, "Body": message.body or message.subject or ""}
        if config.sms_from:
            form["From"] = config.sms_from
        answer = await self._provider(
            "SMS",
            f"{config.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json",
            data=form,
            headers={"user-agent": USER_AGENT},
            auth=(sid, config.sms_auth_token.get_secret_value()),
        )
        sent = answer.get("sid")
        return Sent(provider_id=str(sent) if sent else None)

    async def push(self, message: Message) -> Sent:
        """One push notification through an FCM-v1-compatible API."""
        config = self.config
        if not (config.push_base_url and config.push_project_id and config.push_access_token):
            raise DeliveryFailed(
                "push is not configured: set ORCHESTRION_NOTIFICATIONS__PUSH_BASE_URL, "
                "__PUSH_PROJECT_ID and __PUSH_ACCESS_TOKEN",
                transient=False,
            )
        # FCM's data map holds strings only.
        data = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in message.data.items()}
        payload = {
            "message": {
                "token": message.to,
                "notification": {"title": message.subject or "", "body": message.body},
                "data": data,
            }
        }
        answer = await self._provider(
            "push",
            f"{config.push_base_url.rstrip('/')}/v1/projects/{config.push_project_id}"
            "/messages:send",
            json=payload,
            headers={
                "user-agent": USER_AGENT,
                "authorization": f"Bearer {config.push_access_token.get_secret_value()}",
            },
        )
        name = answer.get("name")
        return Sent(provider_id=str(name) if name else None)
