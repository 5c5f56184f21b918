"""Content tests run the platform with small limits, so limits are cheap to reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrion.settings import Settings
from tests.conftest import make_settings

#: The limits of the test platform.
MAX_BYTES = 200_000
INLINE_MAX_BYTES = 20_000
MAX_CHARS = 50_000


@pytest.fixture
def settings(tmp_path: Path, database_url: str, request: pytest.FixtureRequest) -> Settings:
    """Small content limits; embeddings off unless the test module sets
    ``EMBEDDINGS = "local"``."""
    provider = getattr(request.module, "EMBEDDINGS", "none")
    return make_settings(
        tmp_path,
        database_url,
        content={
            "max_bytes": MAX_BYTES,
            "inline_max_bytes": INLINE_MAX_BYTES,
            "max_extracted_chars": MAX_CHARS,
            "chunk_size": 300,
            "chunk_overlap": 50,
        },
        embeddings={"provider": provider},
    )
