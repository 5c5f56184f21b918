"""Errors of the notifications service.

Exception tree::

    NotFound (404)
    ├── NotificationNotFound       no such notification in the caller's tenant
    ├── TemplateNotFound           no such template version in the caller's tenant
    ├── SubscriptionNotFound       no such subscription in the caller's tenant
    └── InboxItemNotFound          no such message in the caller's inbox
    ValidationFailed (422)
    ├── InvalidTemplate            a template that does not parse
    └── RenderFailed               a send whose template is missing or fails to render

Delivery failures are not exceptions of the API: they end on the notification as
``status: failed`` and ``last_error`` (see :mod:`.channels`).
"""

from orchestrion.kernel.errors import NotFound, ValidationFailed


class NotificationNotFound(NotFound):
    """No such notification visible to the caller."""


class TemplateNotFound(NotFound):
    """No such template visible to the caller."""


class SubscriptionNotFound(NotFound):
    """No such subscription visible to the caller."""


class InboxItemNotFound(NotFound):
    """No such message in the caller's inbox."""


class InvalidTemplate(ValidationFailed):
    """A template whose Jinja source does not parse."""


class RenderFailed(ValidationFailed):
    """A send's template does not exist for its channel, or fails to render."""
