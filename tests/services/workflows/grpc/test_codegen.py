"""The committed gRPC code is what the committed ``.proto`` generates today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
SCRIPT = ROOT / "scripts" / "grpc_codegen.py"


def test_generated_code_is_current(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = sorted(Path(line) for line in done.stdout.split())
    assert len(written) == 3
    for fresh in written:
        committed = ROOT / "src" / fresh.relative_to(tmp_path)
        assert committed.read_text() == fresh.read_text(), (
            f"{committed.name} is stale: run `python scripts/grpc_codegen.py`"
        )
