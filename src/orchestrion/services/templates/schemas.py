"""Request and response models of the templates service."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrion.services.templates.models import CATEGORY_LENGTH, NAME_LENGTH

Visibility = Literal["private", "tenant", "public"]
MAX_TAGS = 20
MAX_DESCRIPTION = 20_000


def _empty_parameters() -> dict[str, Any]:
    return {"type": "object", "properties": {}}


class TemplateCreate(BaseModel):
    """A new template: what it is, the parameters it takes and the workflow it makes."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_LENGTH)
    description: str = Field(
        default="", max_length=MAX_DESCRIPTION, description="What it does (Markdown)."
    )
    category: str = Field(default="general", min_length=1, max_length=CATEGORY_LENGTH)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    parameters: dict[str, Any] = Field(
        default_factory=_empty_parameters,
        description="JSON Schema of the parameters `instantiate` takes (an object schema).",
    )
    definition: dict[str, Any] = Field(
        description="A workflow definition (as `POST /api/v1/workflows` takes) in which "
        "`{{ params.<name> }}` stands for a parameter's value.",
        json_schema_extra={
            "required": ["steps"],
            "properties": {"steps": {"type": "array", "minItems": 1}},
        },
    )


class TemplateUpdate(TemplateCreate):
    """The whole template again (`PUT`): a change of content makes a new version."""


class RatingSummary(BaseModel):
    """The average of the users' stars and how many rated."""

    average: float
    count: int


class Template(BaseModel):
    """A template as the API shows it."""

    id: str
    tenant_id: str
    slug: str | None = Field(description="Set on the platform's starter templates.")
    name: str
    description: str
    category: str
    tags: list[str]
    parameters: dict[str, Any]
    definition: dict[str, Any]
    version: int
    visibility: Visibility
    rating: RatingSummary
    installs: int = Field(description="How many workflows were made from it.")
    created_by: str | None
    created_at: datetime
    updated_at: datetime


class TemplateVersion(BaseModel):
    """The content of one version."""

    template_id: str
    version: int
    name: str
    description: str
    category: str
    tags: list[str]
    parameters: dict[str, Any]
    definition: dict[str, Any]
    created_by: str | None
    created_at: datetime


class Category(BaseModel):
    """A category and how many templates the caller sees in it."""

    name: str
    count: int


class CategoryList(BaseModel):
    """Every category the caller sees, by name."""

    data: list[Category]


class PublishRequest(BaseModel):
    """Who may see the template: its tenant, everyone, or (back to) only its author."""

    model_config = ConfigDict(extra="forbid")

    visibility: Visibility


class RatingCreate(BaseModel):
    """One user's stars and an optional comment; a new one replaces the user's last."""

    model_config = ConfigDict(extra="forbid")

    stars: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5000)


class Rating(BaseModel):
    """A user's rating, with the template's summary after it."""

    template_id: str
    user_id: str
    stars: int
    comment: str | None
    created_at: datetime
    updated_at: datetime
    rating: RatingSummary


class InstantiateRequest(BaseModel):
    """The parameters' values and, optionally, the new workflow's name."""

    model_config = ConfigDict(extra="forbid")

    parameters: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1, max_length=NAME_LENGTH)


class InstantiatedWorkflow(BaseModel):
    """The workflow made, as `POST /api/v1/workflows` answered it (its full shape)."""

    model_config = ConfigDict(extra="allow")

    id: str
    tenant_id: str
    name: str
    version: int
    status: str
    tags: list[str]
    steps: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
