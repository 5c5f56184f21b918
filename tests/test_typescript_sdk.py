"""The TypeScript SDK (``clients/typescript``, npm ``@orchestrion/sdk``) against the real platform.

- Its committed types (``src/schema.d.ts``) are what openapi-typescript makes of the
  document the gateway serves now: a route or schema changed without ``make sdk`` fails here.
- The package and a strict example program type-check against those types, and a file of
  wrong calls does not (each wrong line is refused): the types are real, not ``any``.
- The example, built, runs with Node against ``orchestrion up`` on a loopback port: login
  (and a refresh on 401), a workflow created and run, watched over the realtime socket and
  the SSE stream, read back, and a 404 received as a typed problem.

The package's dependencies are installed with ``npm ci`` from the committed lockfile on
first need. Test workers running in parallel take a file lock, so one installs (and builds)
and the others wait for it. Without node/npm these tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.fixtures.databases import server_missing
from tests.fixtures.processes import free_port, start_up, stop, wait_ready

PACKAGE = Path(__file__).resolve().parents[1] / "clients" / "typescript"
LOCK = PACKAGE / ".sdk.lock"
SCHEMA = PACKAGE / "src" / "schema.d.ts"
EMAIL = "admin@example.com"
PASSWORD = "bootstrap-password-1"
REGENERATE = "run `make sdk` to regenerate clients/typescript/src/schema.d.ts and commit it"


def _tools() -> tuple[str, str]:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        server_missing("node/npm (for the TypeScript SDK)", FileNotFoundError("npm"))
    assert npm is not None
    assert node is not None
    return npm, node


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _run(*command: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), cwd=PACKAGE, env={**os.environ, **env},
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@contextmanager
def _locked() -> Iterator[None]:
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_installed(npm: str) -> None:
    """``npm ci`` unless node_modules already matches the committed lockfile (lock held)."""
    stamp = PACKAGE / "node_modules" / ".orchestrion-installed"
    wanted = _digest(PACKAGE / "package.json", PACKAGE / "package-lock.json")
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    done = _run(npm, "ci", "--no-audit", "--no-fund", timeout=900)
    if done.returncode != 0:
        server_missing("npm ci for clients/typescript", RuntimeError(done.stderr[-3000:]))
    stamp.write_text(wanted)


def _ensure_built(npm: str) -> None:
    """``npm run build`` unless dist/ was built from these very sources (lock held)."""
    sources = sorted(
        [*(PACKAGE / "src").glob("*.ts"), *PACKAGE.glob("tsconfig*.json"), PACKAGE / "package.json"]
    )
    stamp = PACKAGE / "dist" / ".orchestrion-built"
    wanted = _digest(*sources)
    if stamp.is_file() and stamp.read_text() == wanted:
        return
    done = _run(npm, "run", "build")
    assert done.returncode == 0, f"npm run build failed:\n{done.stdout}\n{done.stderr}"
    stamp.write_text(wanted)


@pytest.fixture
def npm_installed() -> str:
    """npm, with the package's dependencies installed (dist/ as it is)."""
    npm, _ = _tools()
    with _locked():
        _ensure_installed(npm)
    return npm


@pytest.fixture
def npm() -> str:
    """npm, with the package's dependencies installed and dist/ built."""
    npm, _ = _tools()
    with _locked():
        _ensure_installed(npm)
        _ensure_built(npm)
    return npm


def _openapi_script() -> ModuleType:
    path = PACKAGE / "scripts" / "openapi.py"
    spec = importlib.util.spec_from_file_location("sdk_openapi_script", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lockfile_pins_integrity_without_registry_addresses() -> None:
    """The lockfile names versions and integrity hashes only: it installs from any mirror."""
    text = (PACKAGE / "package-lock.json").read_text()
    lock: dict[str, Any] = json.loads(text)
    assert '"resolved"' not in text
    # The only addresses a lockfile without "resolved" keeps are the packages' funding links.
    addresses = re.findall(r'"(https?://[^"]*)"', text)
    assert all('"url": "' + a + '"' in text for a in addresses), (
        "an address other than a funding link in package-lock.json: install with .npmrc's "
        "omit-lockfile-registry-resolved=true"
    )
    packages = {k: v for k, v in lock["packages"].items() if k.startswith("node_modules/")}
    assert {"node_modules/openapi-fetch", "node_modules/openapi-typescript"} <= packages.keys()
    assert all(str(v.get("integrity", "")).startswith("sha512-") for v in packages.values())
    assert (PACKAGE / ".npmrc").read_text().count("omit-lockfile-registry-resolved=true") == 1


def test_committed_types_match_the_served_document(npm_installed: str, tmp_path: Path) -> None:
    """openapi-typescript over today's ``/openapi.json`` gives the committed schema.d.ts."""
    document = tmp_path / "openapi.json"
    script = _openapi_script()
    document.write_text(script.render(script.openapi_document()))
    generated = tmp_path / "schema.d.ts"
    done = _run(
        npm_installed, "run", "generate", OPENAPI_JSON=str(document), SCHEMA_OUT=str(generated)
    )
    assert done.returncode == 0, f"openapi-typescript failed:\n{done.stdout}\n{done.stderr}"
    assert generated.read_text() == SCHEMA.read_text(), (
        f"the SDK's types drifted from the served OpenAPI document: {REGENERATE}"
    )


def _tsc(project: str) -> subprocess.CompletedProcess[str]:
    return _run(str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", project, "--noEmit")


def test_package_and_example_type_check_and_wrong_calls_do_not(npm: str) -> None:
    """Strict tsc passes on the package and the example (and the SSE parser's own tests
    pass on the build), and tsc refuses every wrong call."""
    for project in ("tsconfig.json", "tsconfig.examples.json"):
        done = _tsc(project)
        assert done.returncode == 0, f"tsc -p {project}:\n{done.stdout}{done.stderr}"

    _, node = _tools()
    unit = _run(node, "--test", "test/sse.test.mjs")
    assert unit.returncode == 0, f"the SSE parser's tests:\n{unit.stdout}{unit.stderr}"

    wrong = (PACKAGE / "examples" / "wrong.ts").read_text().splitlines()
    marked = {number for number, line in enumerate(wrong, start=1) if "// WRONG" in line}
    assert len(marked) >= 5
    done = _tsc("tsconfig.wrong.json")
    assert done.returncode != 0, "examples/wrong.ts type-checked: the SDK's types are too loose"
    refused = {
        int(m) for m in re.findall(r"^examples/wrong\.ts\((\d+),\d+\): error", done.stdout, re.M)
    }
    assert refused == marked, (
        f"refused lines {sorted(refused)}, marked {sorted(marked)}:\n{done.stdout}"
    )


def test_example_runs_against_a_real_platform(npm: str, tmp_path: Path) -> None:
    """The built example, on Node, against ``orchestrion up``: every step of it succeeds."""
    _, node = _tools()
    out = PACKAGE / "examples" / "dist" / uuid.uuid4().hex
    try:
        built = _run(
            str(PACKAGE / "node_modules" / ".bin" / "tsc"), "-p", "tsconfig.examples.json",
            "--outDir", str(out),
        )  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process = start_up(
            tmp_path, port, ORCHESTRION_ADMIN_EMAIL=EMAIL, ORCHESTRION_ADMIN_PASSWORD=PASSWORD
        )
        try:
            wait_ready(base, process)
            flags = [] if _node_major(node) >= 22 else ["--experimental-websocket"]
            ran = subprocess.run(
                [node, *flags, str(out / "smoke.js")], cwd=PACKAGE,
                env={**os.environ, "ORCHESTRION_URL": base, "ORCHESTRION_EMAIL": EMAIL,
                     "ORCHESTRION_PASSWORD": PASSWORD},
                capture_output=True, text=True, timeout=180, check=False,
            )  # fmt: skip
        finally:
            server_output = stop(process)
    finally:
        shutil.rmtree(out, ignore_errors=True)

    lines = ran.stdout.strip().splitlines()
    failure = f"{ran.stdout}\n{ran.stderr}\n{server_output[-3000:]}"
    assert ran.returncode == 0, failure
    assert lines, failure
    summary: dict[str, Any] = json.loads(lines[-1])
    assert summary["ok"] is True, summary
    assert summary["refreshed"] is True
    assert summary["status"] == "succeeded"
    assert summary["outputs"] == {"result": 41}
    assert summary["sse_types"][0] == "execution.started"
    assert summary["sse_types"][-1] == "execution.succeeded"
    assert summary["sse_resumed_seqs"] == list(range(4, len(summary["sse_types"]) + 1))
    seqs = summary["realtime_seqs"]
    assert seqs == list(range(1, len(summary["sse_types"]) + 1))
    assert summary["realtime_terminal"] == "execution.succeeded"
    assert summary["room_seqs"] == [1, 2, 3]  # resumed after a reconnection: each once, in order
    assert summary["problem"]["status"] == 404
    assert summary["problem"]["title"] == "Not Found"
    assert "not found" in summary["problem"]["detail"]
    assert summary["thrown"]["status"] == 404


def _node_major(node: str) -> int:
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return int(version.strip().lstrip("v").split(".")[0])
