#!/usr/bin/env bash
# Regenerate the SDK's types from the platform's merged OpenAPI document, then build it and
# the console's bundle of it (src/orchestrion/gateway/console/static/vendor/sdk.js).
#   PYTHON=.venv/bin/python clients/typescript/scripts/regenerate.sh      (what `make sdk` runs)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
root="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" "$python" "$here/scripts/openapi.py" "$here/openapi.json"
cd "$here"
npm ci --no-audit --no-fund
npm run generate
npm run build
npm run build:console
