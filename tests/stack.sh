#!/usr/bin/env bash
# The stack test: ops/run from this checkout, with its own state directory, NATS port, API
# port and database, reaches a healthy /healthz; `ops/jetim ops streams` sees jetim's streams
# on the same stack; SIGTERM stops jetim and the servers cleanly; a second run reuses the data.
# Touches no server it did not start, except the shared Postgres where it makes (and drops)
# its own database.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/ops/lib.sh"

state=$(mktemp -d)
# Reachable by the postgres user, so an own cluster (JETIM_OWN_POSTGRES=1) lives in it too.
chmod 755 "$state"
database="jetim_stack_$$"
export JETIM_STATE_DIR="$state"
export JETIM_DB_NAME="$database"
export JETIM_NATS_PORT=$(first_free_port 24222)
api_port=$(first_free_port 20002)
export JETIM_API__LISTEN="127.0.0.1:$api_port"
export JETIM_GATEWAY__LISTEN="127.0.0.1:$(first_free_port 21001)"
run_pid=""

finish() {
  local status=$?
  [ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
  if [ -n "${PG_ADMIN_URL:-}" ]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "stack test failed; ops/run printed:" >&2
    cat "$state"/run*.log >&2 || true
  fi
  rm -rf "$state"
  exit "$status"
}
trap finish EXIT

fail() { echo "stack test: FAILED: $*" >&2; exit 1; }

# start_stack N: runs ops/run in the background, logging to run-N.log, and waits for a
# healthy /healthz (the first run may build jetim).
start_stack() {
  "$root/ops/run" >"$state/run-$1.log" 2>&1 &
  run_pid=$!
  local deadline=$((SECONDS + 1200)) body=""
  while [ $SECONDS -lt $deadline ]; do
    kill -0 "$run_pid" 2>/dev/null || fail "ops/run exited before /healthz was healthy"
    body=$(curl -fsS "http://127.0.0.1:$api_port/healthz" 2>/dev/null || true)
    [ -n "$body" ] && break
    sleep 1
  done
  [ -n "$body" ] || fail "no healthy /healthz within 20 minutes"
  echo "$body" | grep -q '"status":"ok"' || fail "unhealthy: $body"
  echo "stack test: run $1 healthy: $body"
  # The gateway answers a plain request (no upgrade, no query) with OpenIM's 1602.
  local gateway
  gateway=$(curl -fsS "http://$JETIM_GATEWAY__LISTEN/" 2>/dev/null || true)
  echo "$gateway" | grep -q '"errCode":1602' || fail "the gateway did not answer: $gateway"
}

stop_stack() {
  kill -TERM "$run_pid"
  local status=0
  wait "$run_pid" || status=$?
  run_pid=""
  [ "$status" -eq 0 ] || fail "ops/run exited with status $status after SIGTERM"
  grep -q 'jetim::start: stopped' "$state/run-$1.log" || fail "jetim did not report a clean stop"
  port_free "$JETIM_NATS_PORT" || fail "our nats-server still listens after ops/run stopped"
}

PG_ADMIN_URL=""
start_stack 1
PG_ADMIN_URL=$(sed -n 's/^export JETIM_POSTGRES__URL=//p' "$state/stack.env")
PG_ADMIN_URL="${PG_ADMIN_URL%/*}/postgres"

streams=$("$root/ops/jetim" ops streams)
echo "$streams"
echo "$streams" | grep -q '^IM_CONV ' || fail "ops streams does not list IM_CONV"
echo "$streams" | grep -q '^IM_USER ' || fail "ops streams does not list IM_USER"
echo "$streams" | grep -qE "^IM_CONV +push " || fail "ops streams does not list the push consumer"

stop_stack 1
echo "stack test: SIGTERM stopped jetim and its nats-server"

start_stack 2
grep -q 'Unchanged' "$state/run-2.log" || fail "the second run did not find its streams again"
stop_stack 2
echo "stack test: the second run reused the data"
echo "stack test: ok"
