#!/usr/bin/env bash
# The distributed deployment of docker-compose.yaml from local parts: PostgreSQL (metadata DB),
# Redis (Celery broker), Airflow's CeleryExecutor with N Celery workers, api-server, scheduler,
# dag-processor and triggerer. Every process is started with `setsid` (its own process group), its
# log and pid under one state directory, and stopped by process group.
#
#   scripts/cluster.sh up [COMPONENT...]     start what is not running (all by default); waits until ready
#   scripts/cluster.sh down                  stop everything (and the local backend's training jobs)
#   scripts/cluster.sh stop COMPONENT...     stop some components (e.g. `stop scheduler`)
#   scripts/cluster.sh status                one line per component; names the workers
#   scripts/cluster.sh env                   the resolved settings, secrets masked
#
# Components: postgres redis api-server scheduler dag-processor triggerer worker1 .. workerN
# (N = STREAMGUARD_CLUSTER_WORKERS; STREAMGUARD_CLUSTER_WORKER_CONCURRENCY, if set, replaces the file's
# task slots per worker).
# Settings: deploy/airflow.env, the env file docker-compose.yaml reads too ($STREAMGUARD_CLUSTER_ENV_FILE
# for another). The environment may override the STREAMGUARD_CLUSTER_* values and add Airflow
# settings that the file leaves unset. State: $STREAMGUARD_CLUSTER_DIR (default .cluster/ in the
# checkout): logs/, pids/, postgres/, redis/, airflow/ (AIRFLOW_HOME), streamguard/ (STREAMGUARD_HOME:
# the local backend's jobs, artifacts and registry; on several machines it must be shared storage).
# Needs PostgreSQL and Redis (scripts/install-cluster.sh installs Debian's packages) and the
# virtualenv of scripts/setup.sh. Run as root (PostgreSQL itself runs as the `postgres` user) or as
# an ordinary user who may run PostgreSQL's binaries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${STREAMGUARD_CLUSTER_ENV_FILE:-$ROOT/deploy/airflow.env}"
STATE="${STREAMGUARD_CLUSTER_DIR:-$ROOT/.cluster}"
PY="${STREAMGUARD_PYTHON:-$ROOT/.venv/bin/python}"
AIRFLOW_BIN="$(dirname "$PY")/airflow"

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "[cluster] $*"; }

[ -f "$ENV_FILE" ] || die "env file $ENV_FILE not found"
# KEY=VALUE lines; STREAMGUARD_CLUSTER_* may be overridden by the environment, the rest comes from the file.
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in ''|'#'*) continue ;; esac
  key="${line%%=*}"; value="${line#*=}"
  [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "$ENV_FILE: not a KEY=VALUE line: $line"
  if [[ "$key" == STREAMGUARD_CLUSTER_* && -n "${!key:-}" ]]; then continue; fi
  export "$key=$value"
done < "$ENV_FILE"

PG_PORT="$STREAMGUARD_CLUSTER_PG_PORT"
REDIS_PORT="$STREAMGUARD_CLUSTER_REDIS_PORT"
API_PORT="$STREAMGUARD_CLUSTER_API_PORT"
HEALTH_PORT="${STREAMGUARD_CLUSTER_SCHEDULER_HEALTH_PORT:-$((API_PORT + 1))}"
TRIGGER_LOG_PORT="${STREAMGUARD_CLUSTER_TRIGGERER_LOG_PORT:-$((API_PORT + 2))}"
N_WORKERS="${STREAMGUARD_CLUSTER_WORKERS:-2}"
API_WORKERS="${STREAMGUARD_CLUSTER_API_WORKERS:-1}"
WAIT_S="${STREAMGUARD_CLUSTER_WAIT_SECONDS:-180}"
WORKERS=(); for i in $(seq 1 "$N_WORKERS"); do WORKERS+=("worker$i"); done
COMPONENTS=(postgres redis api-server scheduler dag-processor triggerer "${WORKERS[@]}")
LOGS="$STATE/logs"; PIDS="$STATE/pids"

# ------------------------------------------------------------------------------ Airflow's settings
export AIRFLOW_HOME="$STATE/airflow"
export STREAMGUARD_HOME="$STATE/streamguard"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export PYTHONPATH="$ROOT/plugins${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$(dirname "$PY"):$PATH"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="postgresql+psycopg2://$POSTGRES_USER:$POSTGRES_PASSWORD@127.0.0.1:$PG_PORT/$POSTGRES_DB"
export AIRFLOW__CELERY__RESULT_BACKEND="db+postgresql+psycopg2://$POSTGRES_USER:$POSTGRES_PASSWORD@127.0.0.1:$PG_PORT/$POSTGRES_DB"
export AIRFLOW__CELERY__BROKER_URL="redis://127.0.0.1:$REDIS_PORT/$STREAMGUARD_REDIS_DB"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
export AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT="$API_PORT" AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT"
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST=127.0.0.1
export AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT="$HEALTH_PORT"
export AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT="$TRIGGER_LOG_PORT"
# Airflow's own auth manager (docker-compose.yaml uses FAB's, which the Airflow image ships): one
# admin user whose password cluster.sh generates. Both hand out JWTs at POST /auth/token.
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE="$STATE/secrets/passwords.json"

secrets() {
  # The JWT secret every component signs task tokens with, the Fernet key and the admin password:
  # generated once per state directory, readable by its owner only.
  mkdir -p "$STATE/secrets"; chmod 700 "$STATE/secrets"
  if [ ! -s "$STATE/secrets/airflow-secrets.env" ]; then
    "$PY" - "$STATE/secrets" <<'EOF'
import json, os, secrets, sys
from cryptography.fernet import Fernet
d = sys.argv[1]
old = os.umask(0o077)
with open(os.path.join(d, "airflow-secrets.env"), "w") as fh:
    fh.write(f"AIRFLOW__API_AUTH__JWT_SECRET={secrets.token_urlsafe(32)}\n")
    fh.write(f"AIRFLOW__CORE__FERNET_KEY={Fernet.generate_key().decode()}\n")
with open(os.path.join(d, "passwords.json"), "w") as fh:
    json.dump({"admin": secrets.token_urlsafe(16)}, fh)
os.umask(old)
EOF
  fi
  while IFS= read -r line; do export "${line?}"; done < "$STATE/secrets/airflow-secrets.env"
}
[ -s "$STATE/secrets/airflow-secrets.env" ] && secrets

# --------------------------------------------------------------------------------- process groups
pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }
running() {  # the component's process group still has a member
  local pid; pid="$(pid_of "$1")"
  [ -n "$pid" ] && kill -0 -- "-$pid" 2>/dev/null
}

launch() {  # launch NAME CMD...: its own session and process group, output to logs/NAME.log
  local name="$1"; shift
  if running "$name"; then say "$name already running (pid $(pid_of "$name"))"; return 0; fi
  mkdir -p "$LOGS" "$PIDS"
  echo "--- $(date -u +%FT%TZ) starting: $*" >> "$LOGS/$name.log"
  # Not in a job-control shell, so the child is no group leader and setsid execs without forking:
  # $! is the leader of the new process group.
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
  say "$name started (pid $!, log $LOGS/$name.log)"
}

stop_group() {  # stop NAME [SIGNAL]: signal the process group, SIGKILL what is left after a grace period
  local name="$1" sig="${2:-TERM}" pid
  pid="$(pid_of "$name")"
  if [ -z "$pid" ] || ! running "$name"; then rm -f "$PIDS/$name.pid"; return 0; fi
  kill "-$sig" -- "-$pid" 2>/dev/null || true
  for _ in $(seq 1 "${STREAMGUARD_CLUSTER_STOP_SECONDS:-20}"0); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$pid" 2>/dev/null; then
    say "$name did not stop on SIG$sig: SIGKILL"; kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$PIDS/$name.pid"
  say "$name stopped"
}

wait_for() {  # wait_for WHAT CMD...: until CMD succeeds, the component dies, or $WAIT_S pass
  local what="$1"; shift
  local deadline=$((SECONDS + WAIT_S))
  until "$@" >/dev/null 2>&1; do
    if ! running "$what"; then die "$what exited while starting; see $LOGS/$what.log:
$(tail -n 25 "$LOGS/$what.log" 2>/dev/null)"; fi
    [ "$SECONDS" -lt "$deadline" ] || die "$what not ready after ${WAIT_S}s; see $LOGS/$what.log"
    sleep 0.5
  done
}

# ------------------------------------------------------------------------------------- components
pg_bin() {
  local dir
  dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  [ -n "$dir" ] || dir="$(dirname "$(command -v postgres || command -v pg_ctl || echo /nonexistent/x)")"
  [ -x "$dir/postgres" ] || die "PostgreSQL's server binaries not found: run scripts/install-cluster.sh (Debian package postgresql)"
  echo "$dir"
}
as_pg() {  # run as the postgres user when root (PostgreSQL refuses to run as root)
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups --reset-env -- env PATH="$PATH" "$@"; else "$@"; fi
}
pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

start_postgres() {
  local bin data="$STATE/postgres/data"
  bin="$(pg_bin)"
  mkdir -p "$STATE/postgres"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no 'postgres' user: install Debian's postgresql package (scripts/install-cluster.sh)"
    chown postgres: "$STATE/postgres"; chmod 700 "$STATE/postgres"
    setpriv --reuid=postgres --regid=postgres --init-groups test -w "$STATE/postgres" \
      || die "the postgres user cannot reach $STATE/postgres: every folder above it must be searchable (chmod o+x)"
  fi
  if [ ! -s "$data/PG_VERSION" ]; then
    say "initialising PostgreSQL in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 \
      >> "$LOGS/postgres.log" 2>&1 || die "initdb failed; see $LOGS/postgres.log"
  fi
  local run=(); [ "$(id -u)" = 0 ] && run=(setpriv --reuid=postgres --regid=postgres --init-groups)
  launch postgres "${run[@]}" "$bin/postgres" -D "$data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$STATE/postgres" -c max_connections=200
  wait_for postgres pg_ready
  # The Airflow role and database (idempotent); local socket, trusted for the postgres user only.
  local psql=("$bin/psql" -h "$STATE/postgres" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qtA)
  if [ "$(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname='$POSTGRES_USER'")" != 1 ]; then
    as_pg "${psql[@]}" -c "CREATE ROLE \"$POSTGRES_USER\" LOGIN PASSWORD '$POSTGRES_PASSWORD'"
  fi
  if [ "$(as_pg "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname='$POSTGRES_DB'")" != 1 ]; then
    as_pg "${psql[@]}" -c "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\""
  fi
}

start_redis() {
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/install-cluster.sh (Debian package redis-server)"
  mkdir -p "$STATE/redis"
  launch redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$STATE/redis" --save "" \
    --appendonly no --protected-mode yes --daemonize no
  wait_for redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
}

http_ok() { "$PY" -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=3)" "$1"; }

migrate() {
  say "migrating the metadata database"
  "$AIRFLOW_BIN" db migrate >> "$LOGS/airflow-db-migrate.log" 2>&1 \
    || die "airflow db migrate failed; see $LOGS/airflow-db-migrate.log:
$(tail -n 25 "$LOGS/airflow-db-migrate.log")"
}

worker_ready() { grep -q "celery@$1 ready\|$1@.* ready" "$LOGS/$1.log"; }

start_component() {
  case "$1" in
    postgres) start_postgres ;;
    redis) start_redis ;;
    api-server)
      launch api-server "$AIRFLOW_BIN" api-server --host 127.0.0.1 --port "$API_PORT" --workers "$API_WORKERS"
      ;;
    scheduler) launch scheduler "$AIRFLOW_BIN" scheduler ;;
    dag-processor) launch dag-processor "$AIRFLOW_BIN" dag-processor ;;
    triggerer) launch triggerer "$AIRFLOW_BIN" triggerer ;;
    worker[0-9]*)
      # Its own node name (the host name its task instances record) and Celery host name; logs
      # are read by the api-server from the common log folder, so the worker serves none.
      STREAMGUARD_NODE_NAME="$1" launch "$1" "$AIRFLOW_BIN" celery worker --celery-hostname "$1@%h" \
        --skip-serve-logs ${STREAMGUARD_CLUSTER_WORKER_CONCURRENCY:+--concurrency "$STREAMGUARD_CLUSTER_WORKER_CONCURRENCY"}
      ;;
    *) die "unknown component '$1' (one of: ${COMPONENTS[*]})" ;;
  esac
}

wait_ready() {
  case "$1" in
    api-server) wait_for api-server http_ok "http://127.0.0.1:$API_PORT/api/v2/version" ;;
    scheduler) wait_for scheduler http_ok "http://127.0.0.1:$HEALTH_PORT/health" ;;
    worker[0-9]*) wait_for "$1" worker_ready "$1" ;;
    *) running "$1" || die "$1 exited at start; see $LOGS/$1.log" ;;
  esac
}

stop_jobs() {  # the local backend's detached training jobs (own process groups) under STREAMGUARD_HOME
  [ -d "$STREAMGUARD_HOME/jobs" ] || return 0
  "$PY" - "$STREAMGUARD_HOME/jobs" <<'EOF' || true
import json, os, signal, sys
from pathlib import Path
for status in Path(sys.argv[1]).glob("*/status.json"):
    try:
        pid = json.loads(status.read_text()).get("Pid")
        if pid:
            os.killpg(pid, signal.SIGTERM)
            print(f"[cluster] stopped training job {status.parent.name} (pid {pid})")
    except (OSError, ValueError):
        pass
EOF
}

status() {
  local name pid state
  for name in "${COMPONENTS[@]}"; do
    pid="$(pid_of "$name")"
    if running "$name"; then state=running; else state=stopped; pid="-"; fi
    case "$name" in
      worker[0-9]*) printf '%-14s %-8s pid %-8s celery@%s node %s\n' "$name" "$state" "$pid" "$name" "$name" ;;
      *) printf '%-14s %-8s pid %s\n' "$name" "$state" "$pid" ;;
    esac
  done
  echo "api: http://127.0.0.1:$API_PORT  state: $STATE"
}

cmd="${1:-}"; shift || true
case "$cmd" in
  up)
    [ -x "$PY" ] || die "$PY not found: run scripts/setup.sh first"
    "$PY" -c "import airflow.providers.celery, psycopg2, redis" \
      || die "the celery provider, psycopg2 or redis is missing from $(dirname "$PY"): run scripts/setup.sh"
    mkdir -p "$STATE" "$LOGS" "$PIDS" "$AIRFLOW_HOME" "$STREAMGUARD_HOME"
    secrets
    wanted=("$@"); [ ${#wanted[@]} -gt 0 ] || wanted=("${COMPONENTS[@]}")
    for name in "${wanted[@]}"; do
      case " ${COMPONENTS[*]} " in *" $name "*) ;; *) die "unknown component '$name' (one of: ${COMPONENTS[*]})" ;; esac
    done
    started=()
    for name in "${wanted[@]}"; do
      case "$name" in postgres|redis) start_component "$name" ;; esac
    done
    running postgres || die "postgres is not running (start it too: cluster.sh up postgres ...)"
    running redis || die "redis is not running (start it too: cluster.sh up redis ...)"
    [ $# -gt 0 ] || migrate
    for name in "${wanted[@]}"; do
      case "$name" in postgres|redis) continue ;; esac
      if ! running "$name"; then start_component "$name"; started+=("$name"); fi
    done
    for name in "${started[@]}"; do wait_ready "$name"; done
    say "up: $(for n in "${COMPONENTS[@]}"; do running "$n" && printf '%s ' "$n"; done)"
    ;;
  down)
    for name in "${WORKERS[@]}" triggerer dag-processor scheduler api-server redis; do stop_group "$name"; done
    stop_group postgres INT  # fast shutdown
    stop_jobs
    ;;
  stop)
    [ $# -gt 0 ] || die "stop: name the components (${COMPONENTS[*]})"
    for name in "$@"; do
      case " ${COMPONENTS[*]} " in *" $name "*) ;; *) die "unknown component '$name' (one of: ${COMPONENTS[*]})" ;; esac
      if [ "$name" = postgres ]; then stop_group postgres INT; else stop_group "$name"; fi
    done
    ;;
  status) status ;;
  env)
    env | grep -E '^(AIRFLOW|STREAMGUARD|POSTGRES)_' \
      | sed -E 's/^((AIRFLOW__API_AUTH__JWT_SECRET|AIRFLOW__CORE__FERNET_KEY)=).*/\1***/' | sort
    ;;
  *) die "usage: cluster.sh up [COMPONENT...] | down | stop COMPONENT... | status | env" ;;
esac
