"""argon2id costs come from the settings; hashes made with other costs still verify, and
production refuses costs under OWASP's floor."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from orchestrion.services.auth.crypto import configure_hashing, hash_password, verify_password
from orchestrion.settings import Settings
from tests.fixtures.processes import TEST_PASSWORD_HASHING


async def test_new_hashes_use_the_configured_costs_and_old_ones_still_verify() -> None:
    configure_hashing(time_cost=2, memory_kib=2048, parallelism=1)
    before = await hash_password("correct horse battery")
    assert "$m=2048,t=2,p=1$" in before
    configure_hashing(**TEST_PASSWORD_HASHING)
    after = await hash_password("correct horse battery")
    assert "$m=1024,t=1,p=1$" in after
    assert await verify_password(before, "correct horse battery")
    assert await verify_password(after, "correct horse battery")
    assert not await verify_password(before, "wrong horse battery")
    assert not await verify_password(None, "correct horse battery")  # unknown account


def test_production_refuses_weak_costs() -> None:
    strong = {"environment": "production", "secret_key": SecretStr("s" * 40)}
    assert Settings(_env_file=None, **strong).auth.password_hashing.memory_kib == 65536  # type: ignore[call-arg]
    weak = {**strong, "auth": {"password_hashing": {"memory_kib": 1024}}}
    with pytest.raises(ValidationError, match="OWASP"):
        Settings(_env_file=None, **weak)  # type: ignore[call-arg]
