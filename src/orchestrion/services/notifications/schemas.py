"""Request and response models of the notifications service.

A send and a subscription are unions discriminated by ``channel``: each channel says
what its ``to`` is (an address, a URL, a phone number, a device token, a user id), so
the document, the SDK and the validation agree on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from orchestrion.engine import EVENT_TYPES
from orchestrion.kernel.http.openapi import ResponseModel
from orchestrion.services.notifications.models import NAME_LENGTH

Channel = Literal["email", "webhook", "sms", "push", "in_app"]
CHANNELS: tuple[str, ...] = ("email", "webhook", "sms", "push", "in_app")
Status = Literal["queued", "sending", "delivered", "failed"]
MAX_SUBJECT = 1000
MAX_BODY = 100_000

#: A platform event a subscription may name: every execution log entry type, and
#: ``approval.requested`` (an ``approval`` step started waiting).
APPROVAL_REQUESTED = "approval.requested"
EVENTS: tuple[str, ...] = (*sorted(EVENT_TYPES), APPROVAL_REQUESTED)


def _known_event(value: str) -> str:
    if value not in EVENTS:
        raise ValueError(f"unknown event {value!r}; known: {', '.join(EVENTS)}")
    return value


Event = Annotated[
    str,
    AfterValidator(_known_event),
    WithJsonSchema({"type": "string", "enum": list(EVENTS)}),
]

# What ``to`` is on each channel. Email: no whitespace, control character, comma or angle
# bracket, so one address and no header injection. In-app: a user id as realtime's
# ``user:<id>`` takes it. ``\s`` differs between regex engines (U+0085 and U+FEFF are
# space to one and not to another), so both are named: a client's validator and the
# service's then agree.
_SPACE = r"\s\u0085\ufeff\x00-\x1f\x7f"
EMAIL_TO = Field(
    max_length=320,
    pattern=rf"^[^@{_SPACE}<>,;\"]+@[^@{_SPACE}<>,;\"]+\.[^@{_SPACE}<>,;\"]+$",
    description="One email address.",
    examples=["ada@example.com"],
)
WEBHOOK_TO = Field(
    max_length=2048,
    pattern=rf"^https?://[^{_SPACE}/?#@]+(/[^{_SPACE}]*)?$",
    description="An http(s) URL; private addresses only when allow-listed.",
    examples=["https://hooks.example.com/orchestrion"],
)
SMS_TO = Field(
    pattern=r"^\+[1-9][0-9]{6,14}$",
    description="A phone number in E.164 form.",
    examples=["+14155550100"],
)
PUSH_TO = Field(
    max_length=4096,
    pattern=r"^[A-Za-z0-9_:.\-]+$",
    description="A device registration token.",
)
IN_APP_TO = Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,159}$",
    description="The id of a user of the caller's tenant (its inbox, realtime `user:<id>`).",
)
TemplateName = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, pattern=r"^\S(.*\S)?$")]


def _needs_body_or_template(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [{"required": ["body"]}, {"required": ["template"]}]


class _Send(BaseModel):
    """What every channel's send takes besides ``channel`` and ``to``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_needs_body_or_template)

    subject: str | None = Field(default=None, max_length=MAX_SUBJECT)
    body: str | None = Field(default=None, max_length=MAX_BODY)
    template: TemplateName | None = Field(
        default=None,
        description="A template of this channel (its newest version), rendered with `data`; "
        "`subject` and `body` are then ignored.",
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Values the template sees; a webhook's payload carries them too.",
    )

    @model_validator(mode="after")
    def _body_or_template(self) -> Self:
        if self.body is None and self.template is None:
            raise ValueError("give 'body' or 'template'")
        return self


class EmailSend(_Send):
    """An email over SMTP."""

    channel: Literal["email"]
    to: Annotated[str, EMAIL_TO]


class WebhookSend(_Send):
    """A signed POST (Standard Webhooks)."""

    channel: Literal["webhook"]
    to: Annotated[str, WEBHOOK_TO]


class SmsSend(_Send):
    """A text message through the SMS provider."""

    channel: Literal["sms"]
    to: Annotated[str, SMS_TO]


class PushSend(_Send):
    """A push notification through the push provider."""

    channel: Literal["push"]
    to: Annotated[str, PUSH_TO]


class InAppSend(_Send):
    """A message in a user's inbox, also sent on realtime's `user:<id>`."""

    channel: Literal["in_app"]
    to: Annotated[str, IN_APP_TO]


NotificationCreate = Annotated[
    EmailSend | WebhookSend | SmsSend | PushSend | InAppSend, Field(discriminator="channel")
]


class NotificationAccepted(BaseModel):
    """A send was queued."""

    id: str
    status: Status


class Notification(ResponseModel):
    """A notification and how its delivery went."""

    id: str
    channel: Channel
    to: str
    subject: str | None
    body: str
    template: str | None
    template_version: int | None
    data: dict[str, Any]
    event: str | None = Field(description="The platform event that caused it, if any.")
    subscription_id: str | None
    status: Status
    attempts: int = Field(description="Send attempts made so far.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TemplateCreate(BaseModel):
    """A template; an existing name (on the same channel) gets a new version."""

    model_config = ConfigDict(extra="forbid")

    name: TemplateName
    channel: Channel
    subject: str | None = Field(
        default=None, max_length=MAX_SUBJECT, description="Jinja source of the subject."
    )
    body: str = Field(max_length=MAX_BODY, description="Jinja source of the body (sandboxed).")


class NotificationTemplate(ResponseModel):
    """One version of a template."""

    id: str
    name: str
    channel: Channel
    version: int
    subject: str | None
    body: str
    created_by: str | None
    created_at: datetime


class Preferences(BaseModel):
    """The caller's channel preferences."""

    model_config = ConfigDict(extra="forbid")

    muted_channels: list[Channel] = Field(
        max_length=len(CHANNELS),
        description="Channels that send the caller nothing: a send on one of them ends "
        "`failed` with `last_error` saying so.",
    )


class InboxItem(ResponseModel):
    """An in-app message."""

    id: str
    notification_id: str
    subject: str | None
    body: str
    data: dict[str, Any]
    read: bool
    read_at: datetime | None
    created_at: datetime


class WebhookSecretCreated(BaseModel):
    """A new signing secret, shown this once (the previous one signs on for a grace period)."""

    id: str
    secret: str = Field(description="`whsec_` and base64: what `standardwebhooks.Webhook` takes.")
    created_at: datetime


class WebhookSecret(ResponseModel):
    """A signing secret, without its value."""

    id: str
    created_at: datetime
    retired_at: datetime | None = Field(description="When a newer secret replaced it.")
    expires_at: datetime | None = Field(description="When it stops signing (retired ones).")
    active: bool = Field(description="Whether deliveries are signed with it now.")


class WebhookSecretList(BaseModel):
    """The tenant's signing secrets, newest first."""

    data: list[WebhookSecret]


class _Subscribe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: Event
    workflow_id: str | None = Field(
        default=None, max_length=36, description="Only this workflow's events."
    )
    template: TemplateName | None = Field(
        default=None, description="A template of the channel; unset, a default message."
    )


class EmailSubscribe(_Subscribe):
    """Email on each matching event."""

    channel: Literal["email"]
    to: Annotated[str, EMAIL_TO]


class WebhookSubscribe(_Subscribe):
    """A signed webhook on each matching event."""

    channel: Literal["webhook"]
    to: Annotated[str, WEBHOOK_TO]


class SmsSubscribe(_Subscribe):
    """An SMS on each matching event."""

    channel: Literal["sms"]
    to: Annotated[str, SMS_TO]


class PushSubscribe(_Subscribe):
    """A push notification on each matching event."""

    channel: Literal["push"]
    to: Annotated[str, PUSH_TO]


class InAppSubscribe(_Subscribe):
    """An in-app message on each matching event."""

    channel: Literal["in_app"]
    to: Annotated[str, IN_APP_TO]


SubscriptionCreate = Annotated[
    EmailSubscribe | WebhookSubscribe | SmsSubscribe | PushSubscribe | InAppSubscribe,
    Field(discriminator="channel"),
]


class Subscription(ResponseModel):
    """A subscription to platform events."""

    id: str
    event: str
    workflow_id: str | None
    channel: Channel
    to: str
    template: str | None
    created_by: str
    created_at: datetime
