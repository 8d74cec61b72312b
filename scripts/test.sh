#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
exec "$ROOT/.venv/bin/python" -m pytest "$@"
