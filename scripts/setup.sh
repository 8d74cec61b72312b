#!/usr/bin/env bash
# Idempotent set-up: virtualenv in .venv, pinned install, editable streamguard package.
# Re-running is cheap: the install is skipped while requirements/constraints are unchanged.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV="$ROOT/.venv"
STAMP="$VENV/.streamguard-install-stamp"
WANT="$(cat requirements.txt constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtualenv in .venv"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "[setup] installing pinned requirements (first run takes ~2-3 minutes)"
  # pip's own notes about extra local index locations are noise here.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 \
    | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import airflow, torch, torch_geometric, transformers, streamguard" \
    || { echo "[setup] install incomplete: see pip output above" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi
