#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest (one process).
# Without arguments: every test but the cluster ones on two xdist workers (a test file stays on one
# worker, so module fixtures are built once), then the cluster tests on their own, since they time
# a real multi-process deployment and must not share the cores with the rest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
# Chromium + Playwright for the browser test of the UI; the test skips with the reason if this fails.
bash "$ROOT/scripts/install-browser.sh"
# PostgreSQL and Redis for tests/e2e/test_cluster.py (scripts/cluster.sh starts private servers from them).
# Without them the module fails, saying why (or skips, saying so, when not run as root).
bash "$ROOT/scripts/install-cluster.sh" || echo "[test] PostgreSQL/Redis not installed: tests/e2e/test_cluster.py will say why" >&2
cd "$ROOT"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
PYTEST=("$ROOT/.venv/bin/python" -m pytest)
if [ "$#" -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi
status=0
"${PYTEST[@]}" -n "${STREAMGUARD_TEST_WORKERS:-2}" --dist loadfile -m "not cluster" || status=$?
cluster=0
"${PYTEST[@]}" -m cluster || cluster=$?
# 5: no test carries the marker (nothing to run is not a failure here).
[ "$cluster" -eq 5 ] && cluster=0
[ "$status" -ne 0 ] && exit "$status"
exit "$cluster"
