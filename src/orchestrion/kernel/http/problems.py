"""The problem+json document every error is answered with, as an OpenAPI model.

Services declare their error statuses with this one model, so the gateway's merged
document holds one ``Problem`` schema, not one per service.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ProblemError(BaseModel):
    """One error of a problem: where (``loc``) and what (``msg``)."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error is answered."""

    type: str = Field(examples=["https://orchestrion.dev/problems/not-found"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str
    instance: str
    request_id: str | None
    errors: list[ProblemError]
