#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# Chromium + Playwright for the browser test of the UI; the test skips with the reason if this fails.
bash "$ROOT/scripts/install-browser.sh"
cd "$ROOT"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
exec "$ROOT/.venv/bin/python" -m pytest "$@"
