"""Errors of the analytics service.

Exception tree::

    BadRequest (400)
    └── InvalidRange           a `from`/`to` that is not ISO 8601, or not in order, or too long
    Forbidden (403)
    └── OtherTenant            a `tenant_id` filter without `platform:admin`
    NotFound (404)
    └── SloNotFound            no such SLO visible to the caller
"""

from orchestrion.kernel.errors import BadRequest, Forbidden, NotFound


class InvalidRange(BadRequest):
    """The time range of a read cannot be used."""


class OtherTenant(Forbidden):
    """Only platform admins read another tenant's (or every tenant's) figures."""

    title = "Another tenant's figures"


class SloNotFound(NotFound):
    """No SLO with that id in the caller's tenant."""
