"""Request and response bodies of single sign-on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.kernel.http.openapi import ResponseModel


class SsoProvider(ResponseModel):
    """A provider users may sign in with."""

    name: str = Field(description="Its name in the login and callback paths.")
    display_name: str = Field(description="What a sign-in button shows.")


class SsoProviderList(ResponseModel):
    """The configured providers, by name."""

    data: list[SsoProvider]


class SsoExchange(BaseModel):
    """The one-time code the callback gave the frontend."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"code": "f1Xb9...one-time-code"}]}
    )

    code: str = Field(min_length=1, max_length=512)
