#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# Chromium + Playwright for the browser test of the UI; the test skips with the reason if this fails.
bash "$ROOT/scripts/install-browser.sh"
# PostgreSQL and Redis for tests/test_cluster.py (scripts/cluster.sh starts private servers from them).
# Without them the module fails, saying why (or skips, saying so, when not run as root).
bash "$ROOT/scripts/install-cluster.sh" || echo "[test] PostgreSQL/Redis not installed: tests/test_cluster.py will say why" >&2
cd "$ROOT"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
exec "$ROOT/.venv/bin/python" -m pytest "$@"
