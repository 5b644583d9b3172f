# Shared by the suites that run a whole jetim through ops/run (tests/stack.sh,
# tests/compat.sh): a private state directory, NATS port, API and gateway ports and
# database; starting and stopping the stack; cleaning up on exit. Touches no server it did
# not start, except the shared Postgres where it makes (and drops) its own database.
# Source it, then call stack_init NAME.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$root/ops/lib.sh"

# stack_init NAME: private state, ports and database for suite NAME; cleanup on exit.
stack_init() {
  suite="$1"
  state=$(mktemp -d)
  # Reachable by the postgres user, so an own cluster (JETIM_OWN_POSTGRES=1) lives in it too.
  chmod 755 "$state"
  database="jetim_${suite}_$$"
  export JETIM_STATE_DIR="$state"
  export JETIM_DB_NAME="$database"
  export JETIM_NATS_PORT=$(first_free_port 24222)
  api_port=$(first_free_port 20002)
  export JETIM_API__LISTEN="127.0.0.1:$api_port"
  export JETIM_GATEWAY__LISTEN="127.0.0.1:$(first_free_port 21001)"
  run_pid=""
  PG_ADMIN_URL=""
  trap stack_finish EXIT
}

stack_finish() {
  local status=$?
  [ -n "$run_pid" ] && kill -TERM "$run_pid" 2>/dev/null && wait "$run_pid" 2>/dev/null
  if [ -n "${PG_ADMIN_URL:-}" ]; then
    psql "$PG_ADMIN_URL" -qc "DROP DATABASE IF EXISTS \"$database\" WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "$suite test failed; ops/run printed:" >&2
    cat "$state"/run*.log >&2 || true
  fi
  rm -rf "$state"
  exit "$status"
}

fail() { echo "$suite test: FAILED: $*" >&2; exit 1; }

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
  echo "$suite test: run $1 healthy: $body"
  # The gateway answers a plain request (no upgrade, no query) with OpenIM's 1602.
  local gateway
  gateway=$(curl -fsS "http://$JETIM_GATEWAY__LISTEN/" 2>/dev/null || true)
  echo "$gateway" | grep -q '"errCode":1602' || fail "the gateway did not answer: $gateway"
  if [ -z "$PG_ADMIN_URL" ]; then
    PG_ADMIN_URL=$(sed -n 's/^export JETIM_POSTGRES__URL=//p' "$state/stack.env")
    PG_ADMIN_URL="${PG_ADMIN_URL%/*}/postgres"
  fi
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
