"""Single sign-on through a real OpenID provider (``oidc-provider``), driven like a browser.

The platform runs in-process at ``http://testserver``; the provider is a node process on a
loopback port. A :class:`Browser` sends each request to whichever of the two the URL
names, keeping each one's cookies, and fills in the provider's development login and
consent forms as a person would.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from orchestrion.platform import create_embedded_app
from orchestrion.settings import Settings
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, login, make_settings
from tests.fixtures.databases import copy_template
from tests.fixtures.lifespan import in_process
from tests.fixtures.oidc_provider import PLATFORM_URL, OidcProvider

FRONTEND = "http://console.test/sign-in"
SSO = "/api/v1/auth/sso"
PROBLEM = "application/problem+json"


def _settings(tmp_path: Path, url: str, provider: OidcProvider, **auth: Any) -> Settings:
    return make_settings(
        tmp_path,
        url,
        public_url=PLATFORM_URL,
        auth={
            "oidc_providers": {
                "local": provider.settings("local", default_role="editor", display_name="Local"),
                # Down: nothing listens on the discard port.
                "down": {"issuer": "http://127.0.0.1:9", "client_id": "x", "client_secret": "y"},
            },
            "sso_redirect_uris": [FRONTEND, "http://console.test/other"],
            **auth,
        },
    )


@pytest.fixture
async def platform(
    tmp_path: Path, database_url: str, oidc_provider: OidcProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """The platform with the provider configured as ``local``, on each database."""
    application = create_embedded_app(_settings(tmp_path, database_url, oidc_provider))
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=PLATFORM_URL) as client:
            yield client


@pytest.fixture
async def on_sqlite(
    tmp_path: Path, sqlite_template: Path, oidc_provider: OidcProvider
) -> AsyncIterator[httpx.AsyncClient]:
    """:func:`platform` on SQLite only, for the checks the database does not change."""
    url = f"sqlite+aiosqlite:///{copy_template(sqlite_template, tmp_path / 'data')}"
    application = create_embedded_app(_settings(tmp_path, url, oidc_provider))
    async with in_process(application) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url=PLATFORM_URL) as client:
            yield client


class Browser:
    """One browser: the platform's cookies in ``platform``, the provider's in its own jar."""

    def __init__(self, platform: httpx.AsyncClient, *, stop_at: str = FRONTEND) -> None:
        self.platform = platform
        self.provider = httpx.AsyncClient(timeout=60)
        self.stop_at = stop_at

    async def __aenter__(self) -> Browser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.provider.aclose()

    def _client(self, url: str) -> httpx.AsyncClient:
        return self.platform if url.startswith(PLATFORM_URL) else self.provider

    async def go(self, url: str) -> httpx.Response | str:
        """Follow redirects from ``url``: the URL it reaches under ``stop_at`` (the
        frontend), else the last page."""
        while True:
            response = await self._client(url).get(url)
            if not response.is_redirect:
                return response
            url = urljoin(str(response.url), response.headers["location"])
            if url.startswith(self.stop_at):
                return url

    async def start(self, provider: str = "local", redirect_uri: str = FRONTEND) -> str:
        """``login`` at the platform: the provider's authorization URL."""
        started = await self.platform.get(
            f"{SSO}/{provider}/login", params={"redirect_uri": redirect_uri}
        )
        assert started.status_code == 302, started.text
        return started.headers["location"]

    async def sign_in(self, name: str, *, consent: bool = True) -> httpx.Response | str:
        """Sign in as ``name`` at the provider: its login form, then its consent form (or
        its Cancel link); the frontend URL the platform sends the browser to at the end,
        or the platform's error answer."""
        page = await self.go(await self.start())
        while isinstance(page, httpx.Response) and page.url.host == "127.0.0.1":
            assert page.status_code == 200, page.text
            form = _form(page.text)
            if form["prompt"] == "login":
                page = await self._submit(page, {**form, "login": name, "password": "any"})
            elif consent:
                page = await self._submit(page, form)
            else:
                cancel = re.search(r'href="([^"]+/abort)"', page.text)
                assert cancel is not None, page.text
                page = await self.go(urljoin(str(page.url), html.unescape(cancel.group(1))))
        return page

    async def _submit(self, page: httpx.Response, fields: dict[str, str]) -> httpx.Response | str:
        action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        assert action is not None, page.text
        target = urljoin(str(page.url), html.unescape(action.group(1)))
        posted = await self.provider.post(target, data=fields)
        assert posted.is_redirect, posted.text
        return await self.go(urljoin(target, posted.headers["location"]))


def _form(page: str) -> dict[str, str]:
    """The hidden fields of the provider's form (``prompt``: which form it is)."""
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    }


def _query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def _exchange(platform: httpx.AsyncClient, code: str) -> httpx.Response:
    return await platform.post(f"{SSO}/exchange", json={"code": code})


async def _signed_in(platform: httpx.AsyncClient, name: str) -> dict[str, Any]:
    """A whole sign-in as ``name`` in a new browser: the token pair."""
    async with Browser(platform) as browser:
        back = await browser.sign_in(name)
    assert isinstance(back, str), back.text if isinstance(back, httpx.Response) else back
    assert back.startswith(FRONTEND + "?")
    exchanged = await _exchange(platform, _query(back)["code"])
    assert exchanged.status_code == 200, exchanged.text
    tokens: dict[str, Any] = exchanged.json()
    return tokens


async def _me(platform: httpx.AsyncClient, tokens: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    return await platform.get("/api/v1/auth/me", headers=headers)


async def test_a_first_sign_in_creates_the_user_and_the_next_matches_them(
    platform: httpx.AsyncClient,
) -> None:
    tokens = await _signed_in(platform, "alice@example.test")
    assert tokens["token_type"] == "Bearer"
    assert tokens["refresh_token"].startswith("ort_")
    me = await _me(platform, tokens)
    assert me.status_code == 200, me.text
    alice = me.json()
    assert alice["email"] == "alice@example.test"
    assert alice["roles"] == ["editor"]  # the provider's default role

    admin = await login(platform, ADMIN_EMAIL, ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    default = (await platform.get("/api/v1/auth/me", headers=headers)).json()["tenant_id"]
    assert alice["tenant_id"] == default

    again = await _signed_in(platform, "alice@example.test")
    assert (await _me(platform, again)).json()["id"] == alice["id"]
    users = await platform.get(
        "/api/v1/auth/users", params={"email": "alice@example.test"}, headers=headers
    )
    assert users.json()["meta"]["total"] == 1
    # The refresh token works like any other.
    renewed = await platform.post(
        "/api/v1/auth/refresh", json={"refresh_token": again["refresh_token"]}
    )
    assert renewed.status_code == 200, renewed.text

    audit = await platform.get("/api/v1/auth/audit", headers=headers, params={"limit": 100})
    actions = [(e["action"], e["data"]) for e in audit.json()["data"]]
    assert (
        "user.created",
        {"email": "alice@example.test", "roles": ["editor"], "provider": "local"},
    ) in actions
    signed = [d for a, d in actions if a == "login.succeeded" and d.get("method") == "sso"]
    assert len(signed) == 2


async def test_an_existing_user_is_matched_by_verified_email(
    on_sqlite: httpx.AsyncClient,
) -> None:
    admin = await login(on_sqlite, ADMIN_EMAIL, ADMIN_PASSWORD)
    tokens = await _signed_in(on_sqlite, ADMIN_EMAIL)
    me = (await _me(on_sqlite, tokens)).json()
    assert me["id"] == (await _me(on_sqlite, admin)).json()["id"]
    assert me["platform_admin"] is True  # their own rights, not the default role's


async def test_a_replayed_code_is_refused_and_ends_the_sign_in_it_started(
    platform: httpx.AsyncClient,
) -> None:
    async with Browser(platform) as browser:
        back = await browser.sign_in("bob@example.test")
    assert isinstance(back, str)
    code = _query(back)["code"]
    first = await _exchange(platform, code)
    assert first.status_code == 200, first.text
    assert (await _me(platform, first.json())).status_code == 200

    again = await _exchange(platform, code)
    assert again.status_code == 401
    assert again.headers["content-type"] == PROBLEM
    assert "already exchanged" in again.json()["detail"]
    # Whoever got in with it first is out too: the code had leaked.
    assert (await _me(platform, first.json())).status_code == 401
    unknown = await _exchange(platform, "not-a-code")
    assert unknown.status_code == 401
    assert unknown.headers["content-type"] == PROBLEM


async def test_a_wrong_state_or_another_browser_is_refused(on_sqlite: httpx.AsyncClient) -> None:
    async with Browser(on_sqlite) as browser:
        await browser.start()
        wrong = await on_sqlite.get(
            f"{SSO}/local/callback", params={"state": "forged", "code": "x"}
        )
        assert wrong.status_code == 400
        assert wrong.headers["content-type"] == PROBLEM
        assert wrong.json()["title"] == "Invalid SSO State"
        missing = await on_sqlite.get(f"{SSO}/local/callback", params={"code": "x"})
        assert missing.status_code == 400

    # Someone signs in at the provider and hands their callback URL to another browser
    # (login CSRF): that browser lacks the cookie the sign-in set, so it is refused.
    async with Browser(on_sqlite, stop_at=f"{PLATFORM_URL}{SSO}/local/callback") as attacker:
        callback = await attacker.sign_in("mallory")
    assert isinstance(callback, str)
    cookie = on_sqlite.cookies["orn_sso_local"]
    on_sqlite.cookies.clear()
    refused = await on_sqlite.get(callback)
    assert refused.status_code == 400
    assert "another browser" in refused.json()["detail"]
    # The state is spent: not even the browser that started the sign-in may use it now.
    replayed = await on_sqlite.get(callback, headers={"Cookie": f"orn_sso_local={cookie}"})
    assert replayed.status_code == 400
    assert "already used" in replayed.json()["detail"]


async def test_redirects_and_providers_that_are_not_allowed(on_sqlite: httpx.AsyncClient) -> None:
    evil = await on_sqlite.get(f"{SSO}/local/login", params={"redirect_uri": "http://evil.test/"})
    assert evil.status_code == 422
    assert evil.headers["content-type"] == PROBLEM
    assert evil.json()["errors"] == [{"loc": ["query", "redirect_uri"], "msg": "not allow-listed"}]
    # Exact match: a prefix or another query string is another address.
    longer = await on_sqlite.get(
        f"{SSO}/local/login", params={"redirect_uri": FRONTEND + "?next=/x"}
    )
    assert longer.status_code == 422
    unknown = await on_sqlite.get(f"{SSO}/nope/login", params={"redirect_uri": FRONTEND})
    assert unknown.status_code == 404
    assert unknown.json()["title"] == "Unknown Identity Provider"
    down = await on_sqlite.get(f"{SSO}/down/login", params={"redirect_uri": FRONTEND})
    assert down.status_code == 503
    assert down.headers["content-type"] == PROBLEM
    assert "unreachable" in down.json()["detail"]


async def test_denied_consent_returns_to_the_frontend_with_the_error(
    on_sqlite: httpx.AsyncClient,
) -> None:
    async with Browser(on_sqlite) as browser:
        back = await browser.sign_in("carol@example.test", consent=False)
    assert isinstance(back, str)
    query = _query(back)
    assert query["error"] == "access_denied"
    assert "code" not in query
    assert query["error_description"]


async def test_an_unverified_email_is_refused(on_sqlite: httpx.AsyncClient) -> None:
    async with Browser(on_sqlite) as browser:
        answer = await browser.sign_in("unverified-dave@example.test")
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["title"] == "Email Not Verified"
    admin = await login(on_sqlite, ADMIN_EMAIL, ADMIN_PASSWORD)
    headers = {"Authorization": f"Bearer {admin['access_token']}"}
    users = await on_sqlite.get(
        "/api/v1/auth/users", params={"email": "unverified-dave@example.test"}, headers=headers
    )
    assert users.json()["meta"]["total"] == 0


async def test_the_provider_list_is_public(on_sqlite: httpx.AsyncClient) -> None:
    listed = await on_sqlite.get(f"{SSO}/providers")
    assert listed.status_code == 200
    assert listed.json() == {
        "data": [
            {"name": "local", "display_name": "Local"},
            {"name": "down", "display_name": "down"},
        ]
    }
    started = await on_sqlite.get(f"{SSO}/local/login", params={"redirect_uri": FRONTEND})
    location = started.headers["location"]
    query = _query(location)
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code"
    assert {"state", "nonce", "code_challenge"} <= set(query)
    assert query["redirect_uri"] == f"{PLATFORM_URL}{SSO}/local/callback"
    cookie = started.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert f"Path={SSO}/local/callback" in cookie
    assert started.headers["cache-control"] == "no-store"
