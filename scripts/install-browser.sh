#!/usr/bin/env bash
# Idempotent install of what the browser test (tests/browser/test_ui_browser.py) needs:
#   - Debian's Chromium at /usr/bin/chromium (apt; only possible as root), and
#   - Playwright for Python in .venv (the wheel bundles its driver; no `playwright install`:
#     the test drives the system Chromium, nothing downloads a browser build).
# Never fails the caller: when something cannot be installed it says why, and the browser test
# then skips with that reason.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLAYWRIGHT_VERSION="1.65.2"
CHROMIUM="${STREAMGUARD_CHROMIUM:-/usr/bin/chromium}"
PY="$ROOT/.venv/bin/python"

if [ -x "$CHROMIUM" ]; then
  :
elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[install-browser] installing Debian's chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be stale or absent on a fresh machine: refresh once, then install.
  if ! apt-get install -y -q --no-install-recommends chromium chromium-driver >/tmp/sg-apt-chromium.log 2>&1; then
    apt-get update -q >>/tmp/sg-apt-chromium.log 2>&1 || true
    apt-get install -y -q --no-install-recommends chromium chromium-driver >>/tmp/sg-apt-chromium.log 2>&1 \
      || { tail -n 20 /tmp/sg-apt-chromium.log; echo "[install-browser] apt-get could not install chromium:" \
             "the browser test will skip" >&2; }
  fi
else
  echo "[install-browser] $CHROMIUM is missing and this is not root with apt-get: install Debian's" \
       "'chromium' package yourself (sudo apt-get install chromium), or the browser test will skip" >&2
fi

if [ ! -x "$PY" ]; then
  echo "[install-browser] $PY missing: run scripts/setup.sh first" >&2
  exit 0
fi
if ! "$PY" -c "import importlib.metadata as m, sys; sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" \
     2>/dev/null; then
  echo "[install-browser] installing playwright==$PLAYWRIGHT_VERSION into .venv"
  # constraints.txt keeps greenlet (shared with SQLAlchemy) at the project's pin.
  "$PY" -m pip install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION" -c "$ROOT/constraints.txt" \
    2>&1 | grep -v "^WARNING: Location" || true
  "$PY" -c "import playwright.sync_api" 2>/dev/null \
    || echo "[install-browser] playwright could not be installed: the browser test will skip" >&2
fi
exit 0
