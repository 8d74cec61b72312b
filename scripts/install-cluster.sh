#!/usr/bin/env bash
# Installs the servers scripts/cluster.sh runs: PostgreSQL and Redis from Debian's packages.
# Idempotent: does nothing when both are there. Needs root (apt-get); without root it says what is
# missing and exits 1. The packages' own services are not used: cluster.sh starts private servers
# on loopback under its state directory.
set -euo pipefail
have() {
  ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && id postgres >/dev/null 2>&1 \
    && command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1
}
if have; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "install-cluster.sh: PostgreSQL and/or Redis are missing and installing them needs root:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y postgresql redis-server" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "[install-cluster] installing postgresql and redis-server (Debian packages)"
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends postgresql redis-server >/dev/null
have || { echo "install-cluster.sh: postgresql/redis-server installed but their binaries were not found" >&2; exit 1; }
